-- Drives Neovim's own LSP client against gap-ls. Writes what happened to
-- $GAP_LS_NVIM_OUT as JSON, then quits. Two ways to start the client:
--
-- * "shipped" (default): from the shipped editors/neovim/lsp/gap_ls.lua.
--   Neovim 0.7 has no vim.lsp.config, so the table's fields are passed to
--   vim.lsp.start_client. Then diagnostics, hover and a quick fix.
-- * "setup" (STUBBED): the 0.8-0.10 module editors/neovim/gap_ls.lua, with
--   the vim.fs and vim.lsp.start that 0.7 lacks stubbed. The stubbed
--   vim.lsp.start records its arguments and starts a real client with
--   them (start_client + buf_attach_client), so the settings it was given
--   reach gap-ls. Then diagnostics only.
local out_path = os.getenv("GAP_LS_NVIM_OUT")
local mode = os.getenv("GAP_LS_NVIM_MODE") or "shipped"
local file = os.getenv("GAP_LS_NVIM_FILE")
local report = { events = {}, mode = mode }

local function note(event)
  table.insert(report.events, event)
end

local function finish()
  local encoded, json = pcall(vim.fn.json_encode, report)
  if not encoded then
    json = vim.fn.json_encode({ error = "could not encode the report: " .. tostring(json) })
  end
  local handle = io.open(out_path, "w")
  handle:write(json)
  handle:close()
  vim.cmd("qall!")
end

local function start_shipped()
  local config = dofile(os.getenv("GAP_LS_NVIM_CONFIG"))
  -- The installed command in a test virtualenv: everything else comes from the shipped table.
  local cmd = vim.split(os.getenv("GAP_LS_NVIM_CMD"), " ", { plain = true })
  report.shipped_cmd = config.cmd
  report.filetypes = config.filetypes
  report.root_markers = config.root_markers
  vim.cmd("edit " .. file)
  local bufnr = vim.api.nvim_get_current_buf()
  local client_id = vim.lsp.start_client({
    name = "gap_ls",
    cmd = cmd,
    root_dir = vim.fn.fnamemodify(file, ":h"),
    settings = config.settings,
    init_options = config.init_options,
  })
  vim.lsp.buf_attach_client(bufnr, client_id)
  return bufnr
end

local function start_with_setup_module()
  -- STUBS for APIs that appeared in Neovim 0.8 (only what gap_ls.lua uses).
  vim.fs = {
    dirname = function(path)
      return vim.fn.fnamemodify(path, ":h")
    end,
    find = function(names, opts)
      assert(opts and opts.upward and opts.path, "gap_ls.lua should search upward from a path")
      names = type(names) == "string" and { names } or names
      local dir = opts.path
      while true do
        for _, name in ipairs(names) do
          if vim.loop.fs_stat(dir .. "/" .. name) then
            return { dir .. "/" .. name }
          end
        end
        local parent = vim.fn.fnamemodify(dir, ":h")
        if parent == dir then
          return {}
        end
        dir = parent
      end
    end,
  }
  report.start_calls = {}
  vim.lsp.start = function(config, opts)
    -- A copy: start_client adds functions to the table it is given.
    table.insert(report.start_calls, { config = vim.deepcopy(config), opts = vim.deepcopy(opts) })
    local client_id = vim.lsp.start_client(config)
    vim.lsp.buf_attach_client(opts.bufnr, client_id)
    return client_id
  end

  -- As a user would install it: lsp/gap_ls.lua found on the runtimepath, the module by require.
  local editors = os.getenv("GAP_LS_NVIM_EDITOR_DIR")
  vim.opt.runtimepath:append(editors)
  package.path = editors .. "/?.lua;" .. package.path
  require("gap_ls").setup({ settings = { gap = { run = "onType", debounce = 100, severity = { GAP102 = "error" } } } })
  vim.cmd("edit " .. file) -- filetype detection fires FileType python, which calls vim.lsp.start
  report.filetype = vim.bo.filetype
  return vim.api.nvim_get_current_buf()
end

local ok, err = pcall(function()
  local stock = vim.lsp.handlers["textDocument/publishDiagnostics"]
  vim.lsp.handlers["textDocument/publishDiagnostics"] = function(e, result, ctx, cfg)
    note({ kind = "publish", version = result.version, count = #result.diagnostics })
    return stock(e, result, ctx, cfg)
  end

  local bufnr = mode == "setup" and start_with_setup_module() or start_shipped()

  local function diagnostics()
    return vim.diagnostic.get(bufnr)
  end

  local function describe(list)
    local out = {}
    for _, d in ipairs(list) do
      local covers = nil
      if d.end_lnum == d.lnum then -- the text under a one-line range (columns are bytes here)
        covers = vim.api.nvim_buf_get_lines(bufnr, d.lnum, d.lnum + 1, false)[1]:sub(d.col + 1, d.end_col)
      end
      table.insert(out, {
        code = d.code, lnum = d.lnum, col = d.col, source = d.source, message = d.message, severity = d.severity,
        covers = covers,
      })
    end
    return out
  end

  local function flagged(code)
    for _, d in ipairs(diagnostics()) do
      if d.code == code then
        return d
      end
    end
  end

  if mode == "setup" then
    -- Wait for the severity the settings passed to setup() ask for (GAP102 = "error").
    vim.wait(20000, function()
      local d = flagged("GAP102")
      return d ~= nil and d.severity == vim.diagnostic.severity.ERROR
    end, 50)
    report.diagnostics = describe(diagnostics())
    return
  end

  vim.wait(20000, function() return flagged("GAP102") ~= nil end, 50)
  report.diagnostics = describe(diagnostics())
  local first = flagged("GAP102")
  if first == nil then
    return
  end

  vim.api.nvim_win_set_cursor(0, { first.lnum + 1, first.col })
  local hover = vim.lsp.buf_request_sync(bufnr, "textDocument/hover", vim.lsp.util.make_position_params(), 10000)
  for _, response in pairs(hover or {}) do
    if response.result and response.result.contents then
      report.hover = response.result.contents.value
    end
  end

  -- Apply the first code action the way a user does: the menu picks item 1.
  local titles = {}
  vim.ui.select = function(items, _, on_choice)
    for _, item in ipairs(items) do
      local action = item[2] or item.action or item
      table.insert(titles, action.title)
    end
    on_choice(items[1], 1)
  end
  local before = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n")
  vim.lsp.buf.code_action()
  vim.wait(10000, function()
    return table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n") ~= before
  end, 50)
  report.action_titles = titles
  report.text_after_fix = table.concat(vim.api.nvim_buf_get_lines(bufnr, 0, -1, false), "\n")
  -- The edit produces a didChange; the server re-analyses and the diagnostic goes away.
  vim.wait(10000, function() return flagged("GAP102") == nil end, 50)
  report.diagnostics_after_fix = describe(diagnostics())
end)

if not ok then
  report.error = tostring(err)
end
finish()
