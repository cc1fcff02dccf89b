/**
 * The gap-ls extension: starts `gap-ls serve` for Python files with vscode-languageclient and
 * keeps it in step with the editor. It owns the editor side only (finding the server,
 * settings, restarts, the output channel, the test event log); diagnostics, hover and quick
 * fixes are the server's. Settings reach the server as initializationOptions and through
 * `workspace/configuration` (section "gap"), so they apply without a reload; a change of
 * `gap.path` or `gap.interpreter` starts a new server process.
 */

import * as vscode from 'vscode';
import {
    CloseAction,
    DidChangeConfigurationNotification,
    ErrorAction,
    ErrorHandler,
    ExecuteCommandRequest,
    LanguageClient,
    LanguageClientOptions,
    Middleware,
    ResponseError,
    RevealOutputChannelOn,
    ServerOptions,
} from 'vscode-languageclient/node';
import { EventLog } from './eventLog';
import { onDidChangeInterpreter } from './python';
import { findServer, INSTALL_HINT, isNotFound, ServerCommand } from './server';
import { commandSetting, RESTART_KEYS, SECTION, serverSettings } from './settings';

const SEVERITY = ['error', 'warning', 'info', 'hint'] as const;

let controller: GapController | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    const output = vscode.window.createOutputChannel('gap-ls');
    controller = new GapController(context, output, EventLog.fromEnvironment());
    context.subscriptions.push(
        output,
        vscode.commands.registerCommand('gap.restart', () => controller?.restart('gap.restart command')),
        vscode.commands.registerCommand('gap.showOutput', () => output.show(true)),
        vscode.commands.registerCommand('gap.reviewChanges', () => controller?.reviewChanges()),
        vscode.workspace.onDidChangeConfiguration((event) => {
            const changed = RESTART_KEYS.filter((key) => event.affectsConfiguration(`${SECTION}.${key}`));
            if (changed.length > 0) {
                void controller?.restart(`${changed.map((key) => `${SECTION}.${key}`).join(', ')} changed`);
            }
        }),
        vscode.workspace.onDidGrantWorkspaceTrust(() => controller?.restart('workspace trusted')),
    );
    // Not awaited: asking the Python extension for its interpreter can take a while, and the
    // commands above should be usable meanwhile.
    void controller.start();
}

export async function deactivate(): Promise<void> {
    await controller?.stop();
    controller = undefined;
}

/** One language client at a time; start, stop and restart are serialised. */
class GapController {
    private client: LanguageClient | undefined;
    /** The client whose server answered `initialize`; before that a crash is not worth a restart. */
    private readyClient: LanguageClient | undefined;
    private server: ServerCommand | undefined;
    /** `gap.path` and `gap.interpreter` as they were when the current server was looked up. */
    private startedWith: string | undefined;
    private queue: Promise<void> = Promise.resolve();
    private watchingInterpreter = false;

    constructor(
        private readonly context: vscode.ExtensionContext,
        private readonly output: vscode.OutputChannel,
        private readonly events: EventLog,
    ) {}

    start(): Promise<void> {
        return this.enqueue(() => this.doStart());
    }

    stop(): Promise<void> {
        return this.enqueue(() => this.doStop());
    }

    restart(reason: string): Promise<void> {
        return this.enqueue(async () => {
            this.log(`Restarting: ${reason}`);
            this.events.write({ kind: 'restart', reason });
            await this.doStop();
            await this.doStart();
        });
    }

    /**
     * `gap-ls: Review changes`: the server's markdown review of the working tree against git HEAD
     * (`gap-ls.reviewChanges`), opened in a Markdown preview.
     */
    async reviewChanges(): Promise<void> {
        const client = this.readyClient;
        if (client === undefined) {
            void vscode.window.showErrorMessage('gap-ls: the server is not running (see gap-ls: Show output).');
            return;
        }
        const folder = vscode.workspace.workspaceFolders?.[0];
        try {
            const markdown = await client.sendRequest(ExecuteCommandRequest.type, {
                command: 'gap-ls.reviewChanges',
                arguments: folder ? [folder.uri.toString()] : [],
            });
            this.events.write({ kind: 'review', length: String(markdown ?? '').length });
            const document = await vscode.workspace.openTextDocument({ language: 'markdown', content: String(markdown ?? '') });
            await vscode.commands.executeCommand('markdown.showPreview', document.uri);
        } catch (error) {
            const message = error instanceof Error ? error.message : String(error);
            this.report(error);
            void vscode.window.showErrorMessage(`gap-ls: cannot review the changes: ${message}`);
        }
    }

    private enqueue(step: () => Promise<void>): Promise<void> {
        this.queue = this.queue.then(step, step).catch((error: unknown) => this.report(error));
        return this.queue;
    }

    private log(line: string): void {
        this.output.appendLine(`[${new Date().toISOString()}] ${line}`);
    }

    private report(error: unknown): void {
        const message = error instanceof Error ? error.message : String(error);
        this.log(`Error: ${message}`);
        this.events.write({ kind: 'error', message });
    }

    /** The server command settings changed: a restart is queued, the old server gets nothing more. */
    private restartPending(): boolean {
        return this.startedWith !== commandSettings(vscode.workspace.workspaceFolders?.[0]);
    }

    private async doStart(): Promise<void> {
        const folder = vscode.workspace.workspaceFolders?.[0];
        this.startedWith = commandSettings(folder);
        const found = await findServer(folder);
        for (const line of isNotFound(found) ? found.tried : found.skipped) {
            this.log(`${isNotFound(found) ? 'Tried' : 'Skipped'} ${line}`);
        }
        if (isNotFound(found)) {
            this.server = undefined;
            this.log(found.message);
            this.events.write({ kind: 'error', message: found.message, tried: found.tried });
            void this.watchInterpreter();
            void vscode.window.showErrorMessage(found.message, 'Open Settings', 'Show Output').then((choice) => {
                if (choice === 'Open Settings') {
                    void vscode.commands.executeCommand('workbench.action.openSettings', `${SECTION}.path`);
                } else if (choice === 'Show Output') {
                    this.output.show(true);
                }
            });
            return;
        }
        this.server = found;
        this.log(`Starting ${[found.command, ...found.args].join(' ')} (from ${found.source})`);
        this.events.write({ kind: 'start', command: found.command, args: found.args, source: found.source });
        const client = this.createClient(found, folder);
        this.client = client;
        try {
            await client.start();
        } catch (error) {
            // vscode-languageclient has shown one notification ("Go to output"); the output
            // channel has the server's own words (a usage error, a missing module...).
            this.report(error);
            this.log(`The server did not start. ${INSTALL_HINT}`);
            return;
        }
        this.readyClient = client;
        this.events.write({ kind: 'ready', serverInfo: client.initializeResult?.serverInfo ?? null });
        if (found.source === 'Python extension' || found.source === 'PATH') {
            void this.watchInterpreter();
        }
    }

    private async doStop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        this.readyClient = undefined;
        if (client === undefined) {
            return;
        }
        try {
            await client.stop(2000);
        } catch (error) {
            this.log(`Stopping the server failed: ${error instanceof Error ? error.message : String(error)}`);
        }
        this.events.write({ kind: 'stop' });
    }

    /** A new interpreter selected in the Python extension may be (or have) a different gap-ls. */
    private async watchInterpreter(): Promise<void> {
        if (this.watchingInterpreter || !vscode.workspace.isTrusted) {
            return;
        }
        this.watchingInterpreter = true;
        try {
            const subscription = await onDidChangeInterpreter(() => {
                const source = this.server?.source;
                if (source === undefined || source === 'Python extension' || source === 'PATH') {
                    void this.restart('the Python interpreter changed');
                }
            });
            if (subscription !== undefined) {
                this.context.subscriptions.push(subscription);
            }
        } catch (error) {
            this.log(`Not following the Python extension's interpreter: ${error instanceof Error ? error.message : String(error)}`);
        }
    }

    private createClient(server: ServerCommand, folder: vscode.WorkspaceFolder | undefined): LanguageClient {
        const serverOptions: ServerOptions = {
            command: server.command,
            args: server.args, // no `transport`: vscode-languageclient would append `--stdio`
            options: {
                // Not the workspace folder: `python -m gap_ls` would import a `gap_ls` found in the
                // working directory, and a workspace is not trusted to provide one.
                cwd: this.context.extensionUri.fsPath,
                env: { ...process.env, PYTHONSAFEPATH: '1' },
            },
        };
        let fallback: ErrorHandler | undefined;
        const errorHandler: ErrorHandler = {
            error: (error, message, count) => {
                this.events.write({ kind: 'error', message: error.message });
                if (this.readyClient !== client) {
                    return { action: ErrorAction.Continue, handled: true }; // see closed()
                }
                return fallback?.error(error, message, count) ?? { action: ErrorAction.Continue };
            },
            closed: () => {
                this.events.write({ kind: 'closed' });
                if (this.readyClient !== client) {
                    // Exited while starting (a wrong command, gap_ls missing): restarting would
                    // only repeat it. start() fails and says so once.
                    return { action: CloseAction.DoNotRestart, handled: true };
                }
                return fallback?.closed() ?? { action: CloseAction.DoNotRestart };
            },
        };
        const clientOptions: LanguageClientOptions = {
            documentSelector: [
                { scheme: 'file', language: 'python' },
                { scheme: 'untitled', language: 'python' },
            ],
            outputChannel: this.output,
            revealOutputChannelOn: RevealOutputChannelOn.Never,
            initializationOptions: () => serverSettings(folder?.uri),
            synchronize: { configurationSection: SECTION },
            diagnosticPullOptions: { onChange: true, onSave: true },
            errorHandler,
            initializationFailedHandler: (error) => {
                this.events.write({ kind: 'error', message: `initialize failed: ${error instanceof Error ? error.message : String(error)}` });
                return false; // no retry and no extra notification: start() reports the failure once
            },
            middleware: this.middleware(() => client),
        };
        // The id "gap" makes vscode-languageclient read `gap.trace.server`.
        const client = new LanguageClient(SECTION, 'gap-ls', serverOptions, clientOptions);
        fallback = client.createDefaultErrorHandler(4);
        return client;
    }

    private middleware(client: () => LanguageClient): Middleware {
        const events = this.events;
        const middleware: Middleware = {
            workspace: {
                // The server's schema, not the raw `gap` section (see settings.ts).
                configuration: async (params, token, next) => {
                    const defaults = await next(params, token);
                    if (defaults instanceof ResponseError) {
                        return defaults;
                    }
                    const items = params.items.map((item, index) =>
                        item.section === SECTION
                            ? serverSettings(item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined)
                            : defaults[index],
                    );
                    events.write({ kind: 'configuration', items });
                    return items;
                },
                didChangeConfiguration: async () => {
                    if (!client().isRunning() || this.restartPending()) {
                        return; // the new server will read the settings when it starts
                    }
                    await client().sendNotification(DidChangeConfigurationNotification.type, {
                        settings: { [SECTION]: serverSettings(undefined) },
                    });
                },
            },
        };
        if (!events.enabled) {
            return middleware;
        }
        return {
            ...middleware,
            provideDiagnostics: async (document, previousResultId, token, next) => {
                const uri = document instanceof vscode.Uri ? document : document.uri;
                const version = document instanceof vscode.Uri ? null : document.version;
                const report = await next(document, previousResultId, token);
                if (report) {
                    // A cancelled pull (a newer one replaced it) comes back as an empty report.
                    const common = { kind: 'diagnostics', via: 'pull', uri: uri.toString(), version, resultId: report.resultId };
                    events.write(
                        token.isCancellationRequested
                            ? { ...common, cancelled: true }
                            : report.kind === 'full'
                              ? { ...common, ...describe(report.items) }
                              : { ...common, unchanged: true },
                    );
                }
                return report;
            },
            handleDiagnostics: (uri, diagnostics, next) => {
                const version = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString())?.version ?? null;
                events.write({ kind: 'diagnostics', via: 'push', uri: uri.toString(), version, ...describe(diagnostics) });
                next(uri, diagnostics);
            },
            provideHover: async (document, position, token, next) => {
                const hover = await next(document, position, token);
                const text = (hover?.contents ?? []).map((part) => (typeof part === 'string' ? part : part.value)).join('\n');
                events.write({ kind: 'hover', uri: document.uri.toString(), line: position.line, character: position.character, text });
                return hover;
            },
            provideCodeActions: async (document, range, context, token, next) => {
                const actions = await next(document, range, context, token);
                const titles = (actions ?? []).map((action) => action.title);
                events.write({ kind: 'codeActions', uri: document.uri.toString(), version: document.version, line: range.start.line, titles });
                return actions;
            },
        };
    }
}

function commandSettings(folder: vscode.WorkspaceFolder | undefined): string {
    return JSON.stringify(RESTART_KEYS.map((key) => commandSetting(key, folder?.uri) ?? null));
}

function describe(diagnostics: readonly vscode.Diagnostic[]): Record<string, unknown> {
    const gap = diagnostics.filter((d) => d.source === 'gap-ls');
    return {
        count: diagnostics.length,
        codes: gap.map((d) => (typeof d.code === 'object' ? d.code.value : d.code)),
        severities: gap.map((d) => SEVERITY[d.severity]),
        lines: gap.map((d) => d.range.start.line),
        messages: gap.map((d) => d.message),
    };
}
