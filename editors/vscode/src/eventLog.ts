/**
 * The extension's own events as JSON lines, for tests: server start (with its command),
 * configuration sent, diagnostics received (per uri, with codes and document version),
 * code actions and hovers shown, errors. Written only when GAP_VSCODE_EVENT_LOG names a
 * file; otherwise every call is a no-op. Never throws: a test aid must not break the editor.
 */

import * as fs from 'node:fs';

export type Event = { kind: string } & Record<string, unknown>;

export class EventLog {
    private constructor(private readonly file: string | undefined) {}

    static fromEnvironment(env: NodeJS.ProcessEnv = process.env): EventLog {
        return new EventLog(env.GAP_VSCODE_EVENT_LOG || undefined);
    }

    get enabled(): boolean {
        return this.file !== undefined;
    }

    write(event: Event): void {
        if (this.file === undefined) {
            return;
        }
        try {
            fs.appendFileSync(this.file, JSON.stringify({ time: Date.now(), ...event }) + '\n');
        } catch {
            // The log is for tests only; a full disk or a removed folder must not disturb the editor.
        }
    }
}
