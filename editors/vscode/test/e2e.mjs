// End-to-end test of the packaged extension in real VS Code: code-server (VS Code 1.100 in the
// browser) driven by Debian's Chromium through playwright-core, as a user would.
//
// It installs the .vsix into a fresh extensions folder, opens a workspace with one Python file
// that has a GAP102 gap, and checks, step by step:
//   1. the extension starts the configured server and gap-ls diagnostics (GAP102) arrive;
//   2. a settings change (gap.severity) reaches the running server without a reload;
//   3. the Problems view (Ctrl+Shift+M) shows the message;
//   4. hovering the squiggle shows the "Cannot be verified from this code" section;
//   5. the quick-fix menu (Ctrl+.) lists "Re-raise after handling"; choosing it edits the file,
//      the diagnostic goes away for the new version, and the saved file has the scaffold;
//   6. changing gap.path restarts the server: a missing executable gives one notification with
//      the install command; then gap.interpreter starts it as `<python> -m gap_ls serve`;
//   7. "gap-ls: Restart server" and "gap-ls: Show output" work from the Command Palette.
//   8. "gap-ls: Review changes" shows the server's markdown review of the working tree in a preview.
// Assertions read the extension's own event log (GAP_VSCODE_EVENT_LOG), not the UI, except
// where the UI is the point (Problems, hover, menu, notification). Screenshots of 3-6 are saved.
//
// Environment (the pytest wrapper tests/editors/test_vscode.py sets all of them):
//   GAP_E2E_CODE_SERVER  code-server executable (test/install-code-server.sh installs one)
//   GAP_E2E_VSIX         the packaged extension
//   GAP_E2E_GAP_LS       the gap-ls executable to put in `gap.path`
//   GAP_E2E_PYTHON       a Python with gap_ls, for `gap.interpreter` (default: beside GAP_E2E_GAP_LS)
//   GAP_E2E_WORK         an empty folder for the workspace, profiles and logs
//   GAP_E2E_SCREENSHOTS  where to write the PNGs (default: screenshots/ beside this folder)
//   GAP_E2E_REPORT       where to write the JSON report (default: $GAP_E2E_WORK/report.json)
//   GAP_E2E_CHROMIUM     Chromium executable (default /usr/bin/chromium)

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => {
    const value = process.env[name] || fallback;
    if (!value) {
        throw new Error(`${name} is not set`);
    }
    return value;
};
const CODE_SERVER = env('GAP_E2E_CODE_SERVER');
const VSIX = env('GAP_E2E_VSIX');
const GAP_LS = env('GAP_E2E_GAP_LS');
const WORK = env('GAP_E2E_WORK');
const SCREENSHOTS = env('GAP_E2E_SCREENSHOTS', path.join(HERE, '..', 'screenshots'));
const REPORT = env('GAP_E2E_REPORT', path.join(WORK, 'report.json'));
const PYTHON = env('GAP_E2E_PYTHON', path.join(path.dirname(GAP_LS), 'python'));
const CHROMIUM = env('GAP_E2E_CHROMIUM', '/usr/bin/chromium');

const SOURCE = `import logging

log = logging.getLogger("café")


def load(path):
    greeting = "héllo 😀"
    try:
        return read(path)
    except Exception:
        log.warning("could not load %s", path)
        return None
`;
const FLAGGED_LINE = 9; // 0-based: `except Exception:`

const report = { steps: [], timings: {}, screenshots: [] };
const started = Date.now();
function step(name, extra = {}) {
    const entry = { name, at_ms: Date.now() - started, ...extra };
    report.steps.push(entry);
    console.log(`[e2e +${(entry.at_ms / 1000).toFixed(1)}s] ${name}`);
}

// -- the extension's event log -------------------------------------------------------------

const EVENT_LOG = path.join(WORK, 'events.jsonl');
function events() {
    if (!fs.existsSync(EVENT_LOG)) {
        return [];
    }
    return fs
        .readFileSync(EVENT_LOG, 'utf8')
        .split('\n')
        .filter((line) => line.trim() !== '')
        .flatMap((line) => {
            try {
                return [JSON.parse(line)];
            } catch {
                return []; // a line being written right now
            }
        });
}

async function waitFor(what, predicate, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const found = await predicate();
        if (found) {
            return found;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
    }
}

const waitForEvent = (what, match, timeoutMs) =>
    waitFor(what, () => events().find(match), timeoutMs);

const isServiceDiagnostics = (e) =>
    e.kind === 'diagnostics' && !e.unchanged && !e.cancelled && String(e.uri).endsWith('/service.py');

// -- processes -------------------------------------------------------------------------------

function freePort() {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
            const { port } = server.address();
            server.close(() => resolve(port));
        });
    });
}

/** Replace a settings file in one step, so VS Code never reads it half-written (or empty). */
function writeSettings(file, settings) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const temporary = `${file}.tmp`;
    fs.writeFileSync(temporary, JSON.stringify(settings, null, 2));
    fs.renameSync(temporary, file);
}

function isolatedEnv(home) {
    return {
        ...process.env,
        HOME: home,
        XDG_CONFIG_HOME: path.join(home, 'config'),
        XDG_DATA_HOME: path.join(home, 'data'),
        XDG_STATE_HOME: path.join(home, 'state'),
        XDG_CACHE_HOME: path.join(home, 'cache'),
        GAP_VSCODE_EVENT_LOG: EVENT_LOG,
    };
}

/** What the "gap-ls" output channel holds (VS Code keeps each channel in a log file). */
function outputChannelLog(userData) {
    const found = [];
    const walk = (dir) => {
        for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
            const full = path.join(dir, entry.name);
            if (entry.isDirectory()) {
                walk(full);
            } else if (/gap-ls\.log$/.test(entry.name) && full.includes('output_logging_')) {
                found.push(full);
            }
        }
    };
    walk(path.join(userData, 'logs'));
    return found.map((file) => fs.readFileSync(file, 'utf8')).join('\n');
}

async function screenshot(page, name) {
    const file = path.join(SCREENSHOTS, `${name}.png`);
    await page.screenshot({ path: file });
    const size = fs.statSync(file).size;
    report.screenshots.push({ file, bytes: size });
    if (size > 300 * 1024) {
        throw new Error(`${file} is ${Math.round(size / 1024)} KB (limit 300 KB)`);
    }
}

// -- the test ----------------------------------------------------------------------------------

async function main() {
    const home = path.join(WORK, 'home');
    const userData = path.join(WORK, 'user-data');
    const extensions = path.join(WORK, 'extensions');
    const workspace = path.join(WORK, 'project');
    for (const dir of [home, userData, extensions, workspace, SCREENSHOTS, path.join(userData, 'User')]) {
        fs.mkdirSync(dir, { recursive: true });
    }
    fs.writeFileSync(path.join(workspace, 'pyproject.toml'), '[project]\nname = "demo"\n');
    const target = path.join(workspace, 'service.py');
    fs.writeFileSync(target, SOURCE);
    // A git repository, so that "gap-ls: Review changes" has a HEAD to compare the fix with.
    for (const args of [['init', '-q'], ['add', '.'], ['-c', 'user.email=dev@example.com', '-c', 'user.name=dev', 'commit', '-qm', 'base']]) {
        execFileSync('git', ['-C', workspace, ...args], { stdio: 'ignore' });
    }
    // User settings: the server to run, and a quiet, deterministic workbench.
    fs.writeFileSync(
        path.join(userData, 'User', 'settings.json'),
        JSON.stringify(
            {
                'gap.path': GAP_LS,
                'workbench.startupEditor': 'none',
                'workbench.tips.enabled': false,
                'workbench.enableExperiments': false,
                'workbench.secondarySideBar.defaultVisibility': 'hidden',
                'chat.commandCenter.enabled': false,
                'telemetry.telemetryLevel': 'off',
                'extensions.ignoreRecommendations': true,
                'extensions.autoCheckUpdates': false,
                'extensions.autoUpdate': false,
                'update.mode': 'none',
                'security.workspace.trust.enabled': false,
                'editor.minimap.enabled': false,
                'editor.hover.delay': 200,
                'files.autoSave': 'off',
                'git.enabled': false,
            },
            null,
            2,
        ),
    );
    const childEnv = isolatedEnv(home);

    const install = spawnSync(
        CODE_SERVER,
        ['--install-extension', VSIX, '--force', '--extensions-dir', extensions, '--user-data-dir', userData],
        { env: childEnv, encoding: 'utf8', timeout: 120_000 },
    );
    if (install.status !== 0 || !/gap-ls/.test(fs.readdirSync(extensions).join(' '))) {
        throw new Error(`installing ${VSIX} failed:\n${install.stdout}\n${install.stderr}`);
    }
    step('extension installed', { output: install.stdout.trim().split('\n').slice(-1)[0] });

    const port = await freePort();
    const serverLog = fs.openSync(path.join(WORK, 'code-server.log'), 'w');
    const codeServer = spawn(
        CODE_SERVER,
        [
            '--auth', 'none',
            '--bind-addr', `127.0.0.1:${port}`,
            '--disable-telemetry',
            '--disable-update-check',
            '--disable-workspace-trust',
            '--user-data-dir', userData,
            '--extensions-dir', extensions,
            workspace,
        ],
        { env: childEnv, stdio: ['ignore', serverLog, serverLog], detached: true },
    );
    const stopCodeServer = () => {
        try {
            process.kill(-codeServer.pid, 'SIGTERM'); // code-server, its extension host and gap-ls
        } catch {
            // already gone
        }
    };
    let browser;
    try {
        const base = `http://127.0.0.1:${port}`;
        await waitFor('code-server to listen', async () => {
            if (codeServer.exitCode !== null) {
                throw new Error(`code-server exited with ${codeServer.exitCode}; see ${WORK}/code-server.log`);
            }
            try {
                return (await fetch(`${base}/healthz`)).ok;
            } catch {
                return false;
            }
        });
        step('code-server listening', { port });

        browser = await chromium.launch({
            executablePath: CHROMIUM,
            headless: true,
            args: [
                '--no-sandbox',
                '--disable-gpu',
                '--disable-quic',
                '--no-first-run',
                '--disable-background-networking',
                '--disable-component-update',
                '--disable-sync',
            ],
        });
        const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
        const page = await context.newPage();
        await page.goto(`${base}/?folder=${encodeURIComponent(workspace)}`);
        await page.locator('.monaco-workbench').waitFor({ timeout: 60_000 });
        const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'service.py' });
        await row.waitFor({ timeout: 60_000 });
        step('workbench loaded');

        // 1. Open the file from the Explorer: the extension starts gap-ls and diagnostics arrive.
        const openedAt = Date.now();
        await row.dblclick();
        await page.locator('.monaco-editor .view-lines', { hasText: 'except Exception' }).waitFor();
        const start = await waitForEvent('the server to start', (e) => e.kind === 'start');
        if (start.command !== GAP_LS || start.source !== 'gap.path') {
            throw new Error(`started ${start.command} from ${start.source}, expected ${GAP_LS} from gap.path`);
        }
        const first = await waitForEvent(
            'GAP102 diagnostics for service.py',
            (e) => isServiceDiagnostics(e) && e.codes.includes('GAP102'),
        );
        report.timings.open_to_diagnostics_ms = first.time - openedAt;
        if (first.lines[first.codes.indexOf('GAP102')] !== FLAGGED_LINE || first.severities[0] !== 'warning') {
            throw new Error(`unexpected first diagnostics: ${JSON.stringify(first)}`);
        }
        report.first_diagnostics = first;
        step('GAP102 diagnostics received', { version: first.version, ms: report.timings.open_to_diagnostics_ms });

        // 2. A settings change reaches the running server: GAP102 becomes an error, no reload.
        const configAt = Date.now();
        writeSettings(path.join(workspace, '.vscode', 'settings.json'), { 'gap.severity': { GAP102: 'error' } });
        const asError = await waitForEvent(
            'GAP102 re-published as an error after the settings change',
            (e) => isServiceDiagnostics(e) && e.time > configAt && e.severities[e.codes.indexOf('GAP102')] === 'error',
        );
        report.timings.setting_to_diagnostics_ms = asError.time - configAt;
        // The settings the server pulled for that re-analysis (the last pull before it: a pull
        // left over from start-up can also come after configAt).
        const configuration = events()
            .filter((e) => e.kind === 'configuration' && e.time > configAt && e.time <= asError.time)
            .pop();
        if (!configuration || JSON.stringify(configuration.items).includes('"path"')) {
            throw new Error(`configuration sent to the server: ${JSON.stringify(configuration)}`);
        }
        report.configuration_sent = configuration.items;
        if (events().filter((e) => e.kind === 'start').length !== 1) {
            throw new Error('the server was restarted by a settings change that does not need it');
        }
        step('settings change applied without restart', { ms: report.timings.setting_to_diagnostics_ms });

        // 3. The Problems view shows the finding.
        const editorText = page.locator('.monaco-editor .view-lines').first();
        await editorText.click();
        await page.keyboard.press('Control+Shift+M');
        const problem = page.locator('.markers-panel .monaco-list-row', { hasText: 'logs at WARNING' });
        await problem.first().waitFor({ timeout: 30_000 });
        const problemText = await problem.first().innerText();
        if (!problemText.includes('GAP102') && !(await page.locator('.markers-panel').innerText()).includes('GAP102')) {
            throw new Error(`Problems view row without the code: ${problemText}`);
        }
        report.problems_row = problemText;
        await screenshot(page, 'problems');
        step('Problems view shows the finding');

        // 4. Hover the squiggle (with the panel closed, so the hover has room).
        await editorText.click();
        await page.keyboard.press('Control+J');
        await page.locator('.markers-panel').waitFor({ state: 'hidden' });
        const squiggle = page.locator('.monaco-editor .view-overlays .squiggly-error').first();
        await squiggle.waitFor({ state: 'attached' });
        const box = await squiggle.boundingBox();
        if (!box) {
            throw new Error('the squiggle has no position on screen');
        }
        const hover = page.locator('.monaco-hover', { hasText: 'Cannot be verified from this code' });
        await waitFor('the hover', async () => {
            await page.mouse.move(box.x + box.width / 2 - 20, box.y + box.height / 2);
            await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2, { steps: 5 });
            try {
                await hover.first().waitFor({ state: 'visible', timeout: 3_000 });
                return true;
            } catch {
                return false;
            }
        }, 30_000);
        report.hover_text = await hover.first().innerText();
        const hovered = await waitForEvent('the hover event', (e) => e.kind === 'hover' && e.line === FLAGGED_LINE && e.text);
        if (!hovered.text.includes('Cannot be verified from this code') || !hovered.text.includes('GAP102')) {
            throw new Error(`unexpected hover from the server: ${hovered.text}`);
        }
        report.hover_markdown = hovered.text;
        await hover.first().getByText('Cannot be verified from this code').scrollIntoViewIfNeeded();
        await screenshot(page, 'hover');
        step('hover shows what cannot be verified');

        // 5. Quick fix: Ctrl+. on the flagged line lists the scaffold; choosing it edits the file.
        await page.keyboard.press('Escape');
        await page.mouse.move(box.x + box.width + 200, box.y + 200);
        await page.mouse.click(box.x + 4, box.y + box.height / 2);
        await page.keyboard.press('Control+Period');
        const menu = page.locator('.action-widget');
        const item = menu.locator('.monaco-list-row', { hasText: 'Re-raise after handling' });
        await item.first().waitFor({ state: 'visible', timeout: 30_000 });
        report.quick_fix_menu = (await menu.first().innerText()).split('\n').filter((s) => s.trim() !== '');
        await screenshot(page, 'quick-fix');
        // Choose it with the keyboard, as the menu invites ("Enter to Apply"); a pointer block
        // over the menu swallows synthetic clicks.
        await waitFor('"Re-raise after handling" to be focused in the menu', async () => {
            const focused = await menu.locator('.monaco-list-row.focused').first().getAttribute('aria-label');
            if (focused === 'Re-raise after handling') {
                return true;
            }
            await page.keyboard.press('ArrowDown');
            return false;
        }, 10_000);
        const fixAt = Date.now();
        await page.keyboard.press('Enter');
        const fixed = await waitForEvent(
            'diagnostics of the edited version without GAP102',
            (e) => isServiceDiagnostics(e) && e.time > fixAt && e.version > asError.version && !e.codes.includes('GAP102'),
        );
        report.timings.fix_to_clean_diagnostics_ms = fixed.time - fixAt;
        report.after_fix_diagnostics = fixed;
        step('quick fix applied; GAP102 gone', { version: fixed.version, ms: report.timings.fix_to_clean_diagnostics_ms });

        await page.locator('.monaco-editor .view-lines', { hasText: 'TODO(gap-ls)' }).first().waitFor();
        await editorText.click();
        await page.keyboard.press('Control+S');
        const saved = await waitFor('the file saved with the scaffold', () => {
            const text = fs.readFileSync(target, 'utf8');
            return text.includes('TODO(gap-ls)') ? text : undefined;
        }, 15_000);
        report.saved_text = saved;
        if (!/^\s+raise\b/m.test(saved) || /^\s+return None\s*$/m.test(saved)) {
            throw new Error(`the saved file does not re-raise:\n${saved}`);
        }
        await screenshot(page, 'after-fix');
        step('saved file re-raises and carries TODO(gap-ls)');

        report.errors = events().filter((e) => e.kind === 'error' || e.kind === 'closed');
        if (report.errors.length > 0) {
            throw new Error(`the extension logged errors: ${JSON.stringify(report.errors)}`);
        }

        // 6. Changing gap.path restarts the server; a wrong one gives one message with the
        //    install command; putting it back brings the server back.
        // (Workspace settings: code-server does not notice edits of the user settings file.)
        const workspaceSettingsFile = path.join(workspace, '.vscode', 'settings.json');
        const workspaceSettings = JSON.parse(fs.readFileSync(workspaceSettingsFile, 'utf8'));
        const missing = fs.existsSync('/nonexistent') ? path.join(WORK, 'missing', 'gap-ls') : '/nonexistent/bin/gap-ls';
        const wrongAt = Date.now();
        writeSettings(workspaceSettingsFile, { ...workspaceSettings, 'gap.path': missing });
        const notFound = await waitForEvent(
            'the not-found error after gap.path changed',
            (e) => e.kind === 'error' && e.time > wrongAt && String(e.message).includes(missing),
        );
        if (!events().some((e) => e.kind === 'restart' && e.time > wrongAt && e.reason === 'gap.path changed')) {
            throw new Error('changing gap.path did not restart the server');
        }
        if (!notFound.message.includes('pip install gap-ls')) {
            throw new Error(`the not-found message has no install command: ${notFound.message}`);
        }
        const toast = page.locator('.notifications-toasts .notification-toast.notification-fade-in-done', {
            hasText: 'pip install gap-ls',
        });
        await toast.first().waitFor({ state: 'visible', timeout: 15_000 });
        report.not_found_toast = await toast.first().innerText();
        report.not_found_toasts = await page.locator('.notifications-toasts .notification-toast').count();
        if (report.not_found_toasts !== 1) {
            throw new Error(`expected one notification, got ${report.not_found_toasts}`);
        }
        await screenshot(page, 'not-found');
        step('a wrong gap.path gives one message with the install command');

        // gap.path cleared in the workspace, gap.interpreter set: `<python> -m gap_ls serve`.
        const backAt = Date.now();
        writeSettings(workspaceSettingsFile, { ...workspaceSettings, 'gap.path': null, 'gap.interpreter': PYTHON });
        const ready = await waitForEvent('the server to start again', (e) => e.kind === 'ready' && e.time > backAt);
        const restarted = events().filter((e) => e.kind === 'start' && e.time > backAt);
        if (
            restarted.length !== 1 ||
            restarted[0].source !== 'gap.interpreter' ||
            restarted[0].command !== PYTHON ||
            restarted[0].args.join(' ') !== '-m gap_ls serve'
        ) {
            throw new Error(`unexpected server start: ${JSON.stringify(restarted)}`);
        }
        report.interpreter_start = restarted[0];
        await waitForEvent(
            'diagnostics from the restarted server',
            (e) => isServiceDiagnostics(e) && e.time > ready.time && e.codes.length === 0,
        );
        step('gap.interpreter: the server is back, run as python -m gap_ls serve');

        // 7. The commands, from the Command Palette.
        const runCommand = async (title) => {
            await page.keyboard.press('F1');
            const input = page.locator('.quick-input-widget input');
            await input.waitFor({ state: 'visible' });
            await input.fill(`>${title}`);
            const entry = page.locator('.quick-input-list .monaco-list-row', { hasText: title });
            await entry.first().waitFor({ state: 'visible', timeout: 15_000 });
            await page.keyboard.press('Enter');
        };
        const restartAt = Date.now();
        await runCommand('gap-ls: Restart server');
        await waitForEvent(
            'a restart by the command',
            (e) => e.kind === 'restart' && e.time > restartAt && e.reason === 'gap.restart command',
        );
        await waitForEvent('the server to be ready after the restart command', (e) => e.kind === 'ready' && e.time > restartAt);
        await runCommand('gap-ls: Show output');
        const outputView = page.locator('.output-view, .part.panel', { hasText: 'Restarting: gap.restart command' });
        await outputView.first().waitFor({ state: 'visible', timeout: 15_000 });
        step('commands: restart server, show output');

        // 8. "gap-ls: Review changes": the server's markdown review of the working tree (the
        // quick fix above added a `raise`), opened in a Markdown preview.
        await runCommand('Notifications: Clear All Notifications');
        const reviewAt = Date.now();
        await runCommand('gap-ls: Review changes');
        const reviewed = await waitForEvent('the review of the working tree', (e) => e.kind === 'review' && e.time > reviewAt);
        if (!(reviewed.length > 0)) {
            throw new Error(`empty review: ${JSON.stringify(reviewed)}`);
        }
        await page.locator('.tab', { hasText: 'Preview' }).first().waitFor({ state: 'visible', timeout: 15_000 });
        // The preview is a webview: an iframe holding the active frame that renders the Markdown.
        const preview = page.frameLocator('iframe.webview').last().frameLocator('#active-frame');
        await preview.locator('h2', { hasText: 'gap-ls review' }).waitFor({ state: 'visible', timeout: 20_000 });
        report.review_preview = await preview.locator('body').innerText();
        await screenshot(page, 'review');
        step('command: review changes, shown in a Markdown preview');

        // The "gap-ls" output channel: the extension's and the server's log, without errors.
        report.output_channel = outputChannelLog(userData);
        // (vscode-languageclient logs every server exit as an error, even the clean one of a stop.)
        const errors = report.output_channel
            .split('\n')
            .filter((line) => line.startsWith('[Error') && !/Server process exited with code 0\.$/.test(line));
        if (errors.length > 0) {
            throw new Error(`errors in the gap-ls output channel:\n${report.output_channel}`);
        }
        report.ok = true;
    } catch (error) {
        report.ok = false;
        report.error = String(error?.stack ?? error);
        if (browser) {
            const pages = browser.contexts().flatMap((c) => c.pages());
            if (pages[0]) {
                await pages[0].screenshot({ path: path.join(WORK, 'failure.png') }).catch(() => {});
            }
        }
    } finally {
        report.events = events();
        report.total_ms = Date.now() - started;
        await browser?.close().catch(() => {});
        stopCodeServer();
        fs.writeFileSync(REPORT, JSON.stringify(report, null, 2));
    }
    if (!report.ok) {
        console.error(`e2e failed: ${report.error}\n(work folder: ${WORK}; report: ${REPORT})`);
        process.exit(1);
    }
    console.log(`e2e passed in ${(report.total_ms / 1000).toFixed(1)} s: ${JSON.stringify(report.timings)}`);
}

await main();
