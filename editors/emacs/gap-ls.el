;;; gap-ls.el --- Use the gap-ls language server through Eglot  -*- lexical-binding: t; -*-

;; Package-Requires: ((emacs "28.1") (eglot "1.9"))

;;; Commentary:

;; Registers `gap-ls serve' with Eglot for Python buffers and sends gap-ls
;; its settings (section "gap" of `eglot-workspace-configuration').
;;
;;   (add-to-list 'load-path "/path/to/gap-ls/editors/emacs")
;;   (require 'gap-ls)
;;   (add-hook 'python-mode-hook #'eglot-ensure)
;;
;; Settings: set `gap-ls-settings' before the `require' (or with
;; `customize-set-variable' after it); see editors/emacs/README.md.
;;
;; `gap-ls' must be on `exec-path' (for a virtualenv, add its bin folder).
;; Eglot runs one server per buffer: with this entry first in
;; `eglot-server-programs', gap-ls replaces pylsp/pyright in Python buffers.
;; Tested with Emacs 28.2 and Eglot 1.9 by tests/editors/test_emacs.py.

;;; Code:

(defvar eglot-server-programs)
(defvar eglot-workspace-configuration)
(defvar gap-ls-settings)

(defun gap-ls--install-settings ()
  "Put `gap-ls-settings' under :gap in the default `eglot-workspace-configuration'."
  (let ((current (default-value 'eglot-workspace-configuration)))
    (if (or (functionp current) (consp (car-safe current)))
        (display-warning
         'gap-ls
         "`eglot-workspace-configuration' is a function or an alist: add (:gap ...) to it yourself")
      (setq-default eglot-workspace-configuration
                    (plist-put (copy-sequence current) :gap gap-ls-settings)))))

(defcustom gap-ls-settings '(:run "onType" :debounce 200)
  "Settings gap-ls pulls with workspace/configuration (section \"gap\").
A plist with the keys of [tool.gap-ls] in pyproject.toml plus :run
\(\"onType\" or \"onSave\") and :debounce (milliseconds).  Lists must be
vectors, for example (:select [\"GAP1\" \"GAP2\"] :severity (:GAP102 \"error\")).
Per project, set `eglot-workspace-configuration' in .dir-locals.el instead."
  :type 'plist
  :group 'tools
  :set (lambda (symbol value)
         (set-default symbol value)
         (when (featurep 'eglot) (gap-ls--install-settings))))

(with-eval-after-load 'eglot
  (add-to-list 'eglot-server-programs '((python-mode python-ts-mode) . ("gap-ls" "serve")))
  (gap-ls--install-settings))

(provide 'gap-ls)
;;; gap-ls.el ends here
