;;; emacs_session.el --- Drive Eglot against gap-ls in a real Emacs  -*- lexical-binding: t; -*-

;; Run as `emacs -Q --fg-daemon=NAME -l emacs_session.el' (not --batch: Eglot
;; sends didChange from an idle timer and idle timers never fire in batch
;; mode).  Loads the shipped editors/emacs/gap-ls.el, opens $GAP_LS_EMACS_FILE
;; with `eglot-ensure' in `python-mode-hook', and walks through the steps
;; below from a timer, so that between two ticks Emacs is idle in its command
;; loop as it is for a user.  Writes what happened to $GAP_LS_EMACS_OUT as
;; JSON and ends with (kill-emacs 0), or 1 after a failure or a timeout.

;;; Code:

(setq native-comp-deferred-compilation nil)   ; else ~16 s compiling with a fresh HOME
(with-no-warnings (setq native-comp-jit-compilation nil)) ; its name from Emacs 29 on

(require 'cl-lib)
(require 'json)
(require 'package)
(require 'subr-x)

(defvar gap-session-out (getenv "GAP_LS_EMACS_OUT"))
(defvar gap-session-file (getenv "GAP_LS_EMACS_FILE"))
(defvar gap-session-root (file-name-as-directory (getenv "GAP_LS_EMACS_ROOT")))
(defvar gap-session-deadline (+ (float-time) (string-to-number (or (getenv "GAP_LS_EMACS_TIMEOUT") "40"))))
(defvar gap-session-start (float-time))
(defvar gap-session-report nil "Alist written to `gap-session-out'.")
(defvar gap-session-events nil "Notifications seen, newest first (like the Neovim session's events).")
(defvar gap-session-buffer nil)
(defvar gap-session-done nil)
(defvar gap-session-step-times nil "((step . NAME) (at . SECONDS)) for each step done, newest first.")
(defvar gap-session-fix-title "Re-raise after handling")

(defun gap-session-note (key value)
  (setf (alist-get key gap-session-report) value))

(defun gap-session-elapsed ()
  (/ (round (* 1000 (- (float-time) gap-session-start))) 1000.0))

(defun gap-session-write ()
  (gap-session-note 'events (vconcat (reverse gap-session-events)))
  (gap-session-note 'steps (vconcat (reverse gap-session-step-times)))
  (gap-session-note 'elapsed (gap-session-elapsed))
  (let ((coding-system-for-write 'utf-8))
    (with-temp-file gap-session-out
      (insert (json-encode gap-session-report)))))

(defun gap-session-tail (buffer-name-regexp)
  "The last 3000 characters of the first buffer whose name matches."
  (when-let ((buffer (cl-find-if (lambda (b) (string-match-p buffer-name-regexp (buffer-name b)))
                                 (buffer-list))))
    (with-current-buffer buffer
      (buffer-substring-no-properties (max (point-min) (- (point-max) 3000)) (point-max)))))

(defun gap-session-finish (code)
  (unless gap-session-done
    (setq gap-session-done t)
    (when (= code 0)
      ;; A clean exit: ask the server to shut down (bounded), as `M-x eglot-shutdown' does.
      (ignore-errors
        (when-let ((server (and (buffer-live-p gap-session-buffer)
                                (with-current-buffer gap-session-buffer (eglot-current-server)))))
          (eglot-shutdown server nil 3))))
    (ignore-errors (gap-session-write))
    (kill-emacs code)))

(defun gap-session-fail (format-string &rest args)
  (gap-session-note 'error (apply #'format format-string args))
  (gap-session-note 'eglot_events (gap-session-tail "EGLOT.*events"))
  (gap-session-note 'server_stderr (gap-session-tail "EGLOT.*stderr"))
  (gap-session-note 'messages (gap-session-tail "\\*Messages\\*"))
  (gap-session-finish 1))

;;; What the buffer shows

(defun gap-session-lsp-diag (diagnostic)
  (cdr (assoc 'eglot-lsp-diag (flymake-diagnostic-data diagnostic))))

(defun gap-session-flymake (&optional code)
  "Flymake's diagnostics from Eglot in the test buffer (only CODE's, if given)."
  (with-current-buffer gap-session-buffer
    (cl-remove-if-not
     (lambda (d) (let ((lsp (gap-session-lsp-diag d)))
                   (and lsp (or (null code) (equal (plist-get lsp :code) code)))))
     (flymake-diagnostics))))

(defun gap-session-describe (diagnostic)
  (let ((lsp (gap-session-lsp-diag diagnostic)))
    (with-current-buffer gap-session-buffer
      (save-excursion
        (goto-char (flymake-diagnostic-beg diagnostic))
        `((code . ,(plist-get lsp :code))
          (source . ,(plist-get lsp :source))
          (lsp_severity . ,(plist-get lsp :severity))
          (flymake_type . ,(symbol-name (flymake-diagnostic-type diagnostic)))
          (line . ,(line-number-at-pos))
          (column . ,(- (point) (line-beginning-position)))   ; characters, not display columns
          (covers . ,(buffer-substring-no-properties (flymake-diagnostic-beg diagnostic)
                                                     (flymake-diagnostic-end diagnostic)))
          (text . ,(flymake-diagnostic-text diagnostic)))))))

(defun gap-session-text ()
  (with-current-buffer gap-session-buffer
    (buffer-substring-no-properties (point-min) (point-max))))

(defun gap-session-record-publish (_server method &rest params)
  "Around every notification Eglot handles: note the diagnostics gap-ls published."
  (when (eq method 'textDocument/publishDiagnostics)
    (push `((kind . "publish")
            (at . ,(gap-session-elapsed))
            (version . ,(plist-get params :version))
            (codes . ,(vconcat (mapcar (lambda (d) (plist-get d :code)) (plist-get params :diagnostics))))
            (severities . ,(vconcat (mapcar (lambda (d) (plist-get d :severity)) (plist-get params :diagnostics)))))
          gap-session-events)))

;;; The steps

(defvar gap-session-publishes-before-fix 0)

(defun gap-session-step-open ()
  ;; Debian's elpa-* packages, which -Q leaves out of `package-directory-list'.
  (add-to-list 'package-directory-list "/usr/share/emacs/site-lisp/elpa")
  (package-initialize)
  (unless (require 'eglot nil t)
    (error "Eglot is not installed (Debian: apt-get install elpa-eglot)"))
  (gap-session-note 'eglot_version (or (ignore-errors (package-desc-version (cadr (assq 'eglot package-alist)))) "?"))
  (gap-session-note 'emacs_version emacs-version)
  ;; The shipped file, and settings through its defcustom (arrays are vectors).
  (load (getenv "GAP_LS_EMACS_CONFIG") nil t)
  (customize-set-variable 'gap-ls-settings
                          '(:run "onType" :debounce 200 :select ["GAP1"] :severity (:GAP102 "error")))
  (gap-session-note 'server_program (cdr (assoc '(python-mode python-ts-mode) eglot-server-programs)))
  (gap-session-note 'workspace_configuration (default-value 'eglot-workspace-configuration))
  ;; Test folder as the project root (inside a git checkout Eglot would take the git root).
  (add-hook 'project-find-functions
            (lambda (dir) (when (file-in-directory-p dir gap-session-root) (cons 'transient gap-session-root))))
  (advice-add 'eglot-handle-notification :before #'gap-session-record-publish)
  (add-hook 'python-mode-hook #'eglot-ensure)
  (setq gap-session-buffer (find-file-noselect gap-session-file))
  (set-window-buffer (selected-window) gap-session-buffer)
  (set-buffer gap-session-buffer)
  ;; `eglot-ensure' connects from post-command-hook, which the `C-x C-f' a user types would run.
  (with-current-buffer gap-session-buffer (run-hooks 'post-command-hook))
  t)

(defun gap-session-step-diagnostics ()
  "Done once Flymake shows GAP102 at the severity set in `gap-ls-settings' (error)."
  (let ((flagged (gap-session-flymake "GAP102")))
    (when (and flagged (cl-every (lambda (d) (eql 1 (plist-get (gap-session-lsp-diag d) :severity))) flagged))
      (gap-session-note 'diagnostics_at (gap-session-elapsed))
      (gap-session-note 'diagnostics (vconcat (mapcar #'gap-session-describe (gap-session-flymake))))
      t)))

(defun gap-session-step-hover ()
  (with-current-buffer gap-session-buffer
    (let ((diagnostic (car (gap-session-flymake "GAP102"))))
      (goto-char (flymake-diagnostic-beg diagnostic))
      (let* ((server (eglot-current-server))
             (hover (jsonrpc-request server :textDocument/hover (eglot--TextDocumentPositionParams)
                                     :timeout 10)))
        (gap-session-note 'hover_kind (plist-get (plist-get hover :contents) :kind))
        (gap-session-note 'hover (and hover (eglot--hover-info (plist-get hover :contents)
                                                               (plist-get hover :range))))
        (gap-session-note 'server_pid (process-id (jsonrpc--process server)))
        (gap-session-note 'client_resolve_support
                          (if (plist-get (plist-get (plist-get (eglot-client-capabilities server) :textDocument)
                                                    :codeAction)
                                         :resolveSupport)
                              t :json-false)))))
  t)

(defun gap-session-write-pyproject (table)
  (with-temp-file (expand-file-name "pyproject.toml" gap-session-root)
    (insert "[project]\nname = \"demo\"\n" table)))

(defun gap-session-step-ignore-in-pyproject ()
  "Edit pyproject.toml; done once Flymake drops GAP102 (no buffer edit).
Eglot 1.9 watches the files gap-ls registers: **/pyproject.toml."
  (unless (alist-get 'pyproject_written_at gap-session-report)
    (gap-session-write-pyproject "[tool.gap-ls]\nignore = [\"GAP102\"]\n")
    (gap-session-note 'pyproject_written_at (gap-session-elapsed)))
  (when (null (gap-session-flymake "GAP102"))
    (gap-session-note 'ignored_at (gap-session-elapsed))
    t))

(defun gap-session-step-restore-pyproject ()
  (unless (alist-get 'pyproject_restored_at gap-session-report)
    (gap-session-write-pyproject "")
    (gap-session-note 'pyproject_restored_at (gap-session-elapsed)))
  (when (gap-session-flymake "GAP102")
    (gap-session-note 'back_at (gap-session-elapsed))
    t))

(defun gap-session-step-fix ()
  "Apply the quick fix as `M-x eglot-code-actions' does.
The fix is picked in the completion prompt, as a user would."
  (with-current-buffer gap-session-buffer
    (let* ((diagnostic (car (gap-session-flymake "GAP102")))
           (offered nil)
           (last-nonmenu-event 13))     ; a key, not a mouse click: Eglot prompts, no popup menu
      (goto-char (flymake-diagnostic-beg diagnostic))
      (setq gap-session-publishes-before-fix (length gap-session-events))
      (cl-letf (((symbol-function 'completing-read)
                 (lambda (_prompt collection &rest _)
                   (setq offered collection)
                   (unless (assoc gap-session-fix-title collection)
                     (error "No %S among the offered actions %S" gap-session-fix-title (mapcar #'car collection)))
                   gap-session-fix-title)))
        (eglot-code-actions (flymake-diagnostic-beg diagnostic) (flymake-diagnostic-end diagnostic) nil t))
      (gap-session-note 'actions (vconcat (mapcar (lambda (item)
                                                    `((title . ,(car item))
                                                      (kind . ,(plist-get (cdr item) :kind))
                                                      (has_edit . ,(if (plist-get (cdr item) :edit) t :json-false))
                                                      (preferred . ,(if (eq (plist-get (cdr item) :isPreferred) t) t :json-false))))
                                                  offered)))
      (gap-session-note 'text_after_fix (gap-session-text))
      (gap-session-note 'fixed_at (gap-session-elapsed))))
  t)

(defun gap-session-step-cleared ()
  "Done once gap-ls published again and Flymake no longer shows GAP102."
  (let ((published (seq-take gap-session-events (- (length gap-session-events) gap-session-publishes-before-fix))))
    (when (and published
               (not (seq-contains-p (alist-get 'codes (car published)) "GAP102"))
               (null (gap-session-flymake "GAP102")))
      (gap-session-note 'cleared_at (gap-session-elapsed))
      (gap-session-note 'diagnostics_after_fix (vconcat (mapcar #'gap-session-describe (gap-session-flymake))))
      t)))

(defvar gap-session-steps
  ;; (NAME SECONDS FUNCTION): FUNCTION runs at each tick until it returns non-nil, for at most SECONDS.
  '(("opening the file and starting Eglot" 5 gap-session-step-open)
    ("Flymake to show GAP102 from gap-ls (as an error, per gap-ls-settings)" 20 gap-session-step-diagnostics)
    ("the hover" 10 gap-session-step-hover)
    ("GAP102 to go when pyproject.toml ignores it (file watching, no buffer edit)" 10
     gap-session-step-ignore-in-pyproject)
    ("GAP102 to come back when pyproject.toml no longer ignores it" 10 gap-session-step-restore-pyproject)
    ("listing and applying the quick fix" 10 gap-session-step-fix)
    ("GAP102 to go away after the fix" 10 gap-session-step-cleared)))

(defvar gap-session-step-started nil)

(defun gap-session-tick ()
  (unless gap-session-done
    (let ((step (car gap-session-steps))
          (rearm t))
      (unwind-protect
          (condition-case err
              (cond
               ((null step) (setq rearm nil) (gap-session-finish 0))
               ((> (float-time) gap-session-deadline)
                (setq rearm nil)
                (gap-session-fail "overall timeout while waiting for %s" (car step)))
               (t
                (unless gap-session-step-started (setq gap-session-step-started (float-time)))
                (cond
                 ((funcall (nth 2 step))
                  (push `((step . ,(car step)) (at . ,(gap-session-elapsed))) gap-session-step-times)
                  (setq gap-session-steps (cdr gap-session-steps)
                        gap-session-step-started nil))
                 ((> (- (float-time) gap-session-step-started) (nth 1 step))
                  (setq rearm nil)
                  (gap-session-fail "timed out after %ss waiting for %s; Flymake shows %S"
                                    (nth 1 step) (car step)
                                    (and (buffer-live-p gap-session-buffer)
                                         (mapcar #'gap-session-describe (gap-session-flymake))))))))
            (error (setq rearm nil)
                   (gap-session-fail "%s failed: %s" (car step) (error-message-string err))))
        (when (and rearm (not gap-session-done))
          ;; One-shot timers, re-armed after each tick: a tick never runs inside another.
          (run-with-timer 0.05 nil #'gap-session-tick))))))

(run-with-timer 0.05 nil #'gap-session-tick)
;; A last resort if the loop itself wedges (the pytest also kills the daemon after its own timeout).
(run-with-timer (+ 5 (- gap-session-deadline (float-time))) nil
                (lambda () (gap-session-fail "watchdog: the session did not finish")))

;;; emacs_session.el ends here
