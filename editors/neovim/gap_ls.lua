-- gap-ls for Neovim 0.8 to 0.10 (no vim.lsp.config there).
--
-- Copy this file to ~/.config/nvim/lua/gap_ls.lua and lsp/gap_ls.lua to
-- ~/.config/nvim/lsp/gap_ls.lua, then in init.lua:
--
--   require("gap_ls").setup()                                   -- defaults
--   require("gap_ls").setup({ settings = { gap = { run = "onSave" } } })
--
-- On `FileType python` this starts (or reuses) gap-ls with vim.lsp.start,
-- using the table of lsp/gap_ls.lua merged with `opts`. `init_options`
-- follows `settings.gap` unless `opts` sets it. The root is found as 0.11
-- does: the nearest pyproject.toml upward, else the nearest .git, else the
-- file's folder.
-- Untested in 0.8-0.10 (only 0.7.2 is packaged where gap-ls is tested);
-- tests/editors/test_neovim.py loads it in 0.7.2 with vim.lsp.start and
-- vim.fs stubbed.
local M = {}

-- The shipped table: lsp/gap_ls.lua on the runtimepath, else next to this file.
function M.config()
  local path = vim.api.nvim_get_runtime_file("lsp/gap_ls.lua", false)[1]
  if path == nil then
    local here = debug.getinfo(1, "S").source:gsub("^@", "")
    path = vim.fs.dirname(here) .. "/lsp/gap_ls.lua"
  end
  return dofile(path)
end

-- The configuration `setup` starts: the shipped table with `opts` over it.
function M.resolve(opts)
  opts = opts or {}
  local config = vim.tbl_deep_extend("force", M.config(), opts)
  if opts.init_options == nil and opts.settings and opts.settings.gap then
    config.init_options = config.settings.gap
  end
  return config
end

-- The root as Neovim 0.11 finds it: each marker in turn, searched upward.
function M.root(folder, markers)
  for _, marker in ipairs(markers) do
    local found = vim.fs.find(marker, { path = folder, upward = true })[1]
    if found then
      return vim.fs.dirname(found)
    end
  end
  return folder
end

-- Start or reuse gap-ls for buffer `bufnr` (what the FileType autocommand does).
-- (Where vim.lsp.start has no `bufnr` option it attaches the current buffer: `bufnr` during FileType.)
function M.start(bufnr, config)
  local name = vim.api.nvim_buf_get_name(bufnr)
  local folder = name ~= "" and vim.fs.dirname(name) or vim.loop.cwd()
  return vim.lsp.start({
    name = "gap_ls",
    cmd = config.cmd,
    root_dir = M.root(folder, config.root_markers),
    settings = config.settings,
    init_options = config.init_options,
  }, { bufnr = bufnr })
end

function M.setup(opts)
  local config = M.resolve(opts)
  vim.api.nvim_create_autocmd("FileType", {
    group = vim.api.nvim_create_augroup("gap_ls", { clear = true }),
    pattern = config.filetypes,
    callback = function(args)
      M.start(args.buf, config)
    end,
  })
end

return M
