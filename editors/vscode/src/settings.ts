/**
 * The `gap.*` VS Code settings translated into the server's schema: the keys of
 * `[tool.gap-ls]` (hyphenated: `per-file-ignores`, `logging-calls`, ...) plus `run` and
 * `debounce`. Analysis keys are sent only where the user set them, so a project's
 * `[tool.gap-ls]` is not overridden by the defaults shown in the Settings editor. The
 * settings that choose the server command (`gap.path`, `gap.interpreter`) and the client's
 * own `gap.trace.server` are never sent.
 */

import * as vscode from 'vscode';

export const SECTION = 'gap';

/** VS Code key (under `gap.`) -> server key (as in `[tool.gap-ls]`). */
export const ANALYSIS_KEYS: ReadonlyArray<readonly [string, string]> = [
    ['select', 'select'],
    ['ignore', 'ignore'],
    ['severity', 'severity'],
    ['exclude', 'exclude'],
    ['perFileIgnores', 'per-file-ignores'],
    ['loggingCalls', 'logging-calls'],
    ['errorBoundaries', 'error-boundaries'],
    ['retryDecorators', 'retry-decorators'],
    ['sideEffectCalls', 'side-effect-calls'],
    ['keyNames', 'key-names'],
    ['lockTypes', 'lock-types'],
];

/** Settings whose change needs a new server process rather than a configuration update. */
export const RESTART_KEYS = ['path', 'interpreter'] as const;

export type ServerSettings = Record<string, unknown>;

/** Whether the user set a value anywhere (user, workspace or folder settings), not just the default. */
function isSet(config: vscode.WorkspaceConfiguration, key: string): boolean {
    const inspected = config.inspect(key);
    return (
        inspected !== undefined &&
        (inspected.globalValue !== undefined ||
            inspected.workspaceValue !== undefined ||
            inspected.workspaceFolderValue !== undefined)
    );
}

/** What the server gets for one scope (a workspace folder, a file, or the whole window). */
export function serverSettings(scope: vscode.Uri | undefined): ServerSettings {
    const config = vscode.workspace.getConfiguration(SECTION, scope);
    const settings: ServerSettings = {
        run: config.get<string>('run', 'onType'),
        debounce: config.get<number>('debounce', 200),
    };
    for (const [key, serverKey] of ANALYSIS_KEYS) {
        if (isSet(config, key)) {
            settings[serverKey] = config.get(key);
        }
    }
    return settings;
}

/** A string or a non-empty list of strings from `gap.path` / `gap.interpreter`, else undefined. */
export function commandSetting(key: (typeof RESTART_KEYS)[number], scope: vscode.Uri | undefined): string[] | undefined {
    const value = vscode.workspace.getConfiguration(SECTION, scope).get<unknown>(key);
    const parts = typeof value === 'string' ? [value] : Array.isArray(value) ? value : [];
    const strings = parts.filter((part): part is string => typeof part === 'string' && part.trim() !== '');
    return strings.length > 0 ? strings : undefined;
}
