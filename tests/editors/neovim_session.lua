-- Drives Neovim's own LSP client against gap-ls, starting from the shipped
-- editors/neovim/lsp/gap_ls.lua. Neovim 0.7 has no vim.lsp.config, so the
-- table's fields are passed to vim.lsp.start_client. Writes what happened
-- to $GAP_LS_NVIM_OUT as JSON, then quits.
local out_path = os.getenv("GAP_LS_NVIM_OUT")
local config = dofile(os.getenv("GAP_LS_NVIM_CONFIG"))
local file = os.getenv("GAP_LS_NVIM_FILE")
local report = { events = {} }

local function note(event)
  table.insert(report.events, event)
end

local function finish()
  local handle = io.open(out_path, "w")
  handle:write(vim.fn.json_encode(report))
  handle:close()
  vim.cmd("qall!")
end

local ok, err = pcall(function()
  -- The installed command in a test virtualenv: everything else comes from the shipped table.
  local cmd = vim.split(os.getenv("GAP_LS_NVIM_CMD"), " ", { plain = true })
  report.shipped_cmd = config.cmd
  report.filetypes = config.filetypes
  report.root_markers = config.root_markers

  local stock = vim.lsp.handlers["textDocument/publishDiagnostics"]
  vim.lsp.handlers["textDocument/publishDiagnostics"] = function(e, result, ctx, cfg)
    note({ kind = "publish", version = result.version, count = #result.diagnostics })
    return stock(e, result, ctx, cfg)
  end

  vim.cmd("edit " .. file)
  local bufnr = vim.api.nvim_get_current_buf()
  local root = vim.fn.fnamemodify(file, ":h")
  local client_id = vim.lsp.start_client({
    name = "gap_ls",
    cmd = cmd,
    root_dir = root,
    settings = config.settings,
    init_options = config.init_options,
  })
  vim.lsp.buf_attach_client(bufnr, client_id)

  local function diagnostics()
    return vim.diagnostic.get(bufnr)
  end

  vim.wait(20000, function() return #diagnostics() > 0 end, 50)
  report.diagnostics = {}
  for _, d in ipairs(diagnostics()) do
    table.insert(report.diagnostics, { code = d.code, lnum = d.lnum, col = d.col, source = d.source, message = d.message })
  end
  if #report.diagnostics == 0 then
    return
  end

  local first = diagnostics()[1]
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
  vim.wait(10000, function() return #diagnostics() == 0 end, 50)
  report.diagnostics_after_fix = #diagnostics()
end)

if not ok then
  report.error = tostring(err)
end
finish()
