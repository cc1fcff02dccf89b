-- gap-ls for Neovim >= 0.11 (vim.lsp.config / vim.lsp.enable).
--
-- Put this file on your runtimepath as lsp/gap_ls.lua (for example
-- ~/.config/nvim/lsp/gap_ls.lua), then call vim.lsp.enable("gap_ls").
-- The same table works for older Neovim through editors/neovim/gap_ls.lua.
--
-- `settings` answers the server's workspace/configuration requests (section
-- "gap"); `init_options` carries the same table for clients that only send
-- initializationOptions. Keys are those of [tool.gap-ls] in pyproject.toml,
-- plus `run` ("onType" | "onSave") and `debounce` (milliseconds).
local gap_settings = {
  run = "onType",
  debounce = 200,
}

return {
  cmd = { "gap-ls", "serve" },
  filetypes = { "python" },
  root_markers = { "pyproject.toml", ".git" },
  settings = { gap = gap_settings },
  init_options = gap_settings,
}
