/**
 * Finding the gap-ls server command, in this order:
 *
 * 1. `gap.path`: an executable, or a command with arguments (`serve` is appended);
 * 2. `gap.interpreter`: a Python with gap-ls installed, run as `<python> -m gap_ls serve`;
 * 3. the interpreter selected in the Python extension, if it has gap-ls installed
 *    (skipped in untrusted workspaces: that choice can come from workspace settings);
 * 4. `gap-ls` on PATH.
 *
 * An explicit setting that does not work is reported as such and is not silently replaced by
 * the next source. The result is either a command or one message for the user that says how
 * to install gap-ls; nothing here throws.
 */

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { selectedInterpreter } from './python';
import { commandSetting } from './settings';

export type ServerSource = 'gap.path' | 'gap.interpreter' | 'Python extension' | 'PATH';

export interface ServerCommand {
    readonly command: string;
    readonly args: string[];
    readonly source: ServerSource;
    /** Sources skipped before this one, and why, for the output channel. */
    readonly skipped: string[];
}

export interface NotFound {
    /** One sentence for the notification, with the install command. */
    readonly message: string;
    /** What was tried, for the output channel. */
    readonly tried: string[];
}

// Plain text: notifications do not render Markdown.
export const INSTALL_HINT =
    'Install it with "pip install gap-ls" (or "python -m pip install <path to a gap-ls checkout>") ' +
    'in the interpreter selected in the Python extension or on PATH, or set gap.path to the gap-ls executable.';

const IS_WINDOWS = process.platform === 'win32';

/** `${workspaceFolder}`, `${userHome}`, `${env:NAME}` and a leading `~` in a setting. */
export function expand(value: string, folder: vscode.WorkspaceFolder | undefined): string {
    let expanded = value
        .replace(/\$\{userHome\}/g, os.homedir())
        .replace(/\$\{env:([^}]+)\}/g, (_, name: string) => process.env[name] ?? '');
    if (folder !== undefined) {
        expanded = expanded.replace(/\$\{workspaceFolder\}/g, folder.uri.fsPath);
    }
    if (expanded === '~' || expanded.startsWith('~/')) {
        expanded = path.join(os.homedir(), expanded.slice(1));
    }
    if (folder !== undefined && !path.isAbsolute(expanded) && expanded.includes('/')) {
        expanded = path.join(folder.uri.fsPath, expanded);
    }
    return expanded;
}

function isExecutableFile(file: string): boolean {
    try {
        if (!fs.statSync(file).isFile()) {
            return false;
        }
        fs.accessSync(file, IS_WINDOWS ? fs.constants.F_OK : fs.constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

/** An executable named `name` (or a path to one), like `which`. */
export function which(name: string): string | undefined {
    if (name.includes('/') || (IS_WINDOWS && name.includes('\\'))) {
        return isExecutableFile(name) ? name : undefined;
    }
    const extensions = IS_WINDOWS ? (process.env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';').concat(['']) : [''];
    for (const directory of (process.env.PATH ?? '').split(path.delimiter)) {
        if (directory === '') {
            continue;
        }
        for (const extension of extensions) {
            const candidate = path.join(directory, name + extension);
            if (isExecutableFile(candidate)) {
                return candidate;
            }
        }
    }
    return undefined;
}

/** Whether `python` (a command, maybe with arguments) can import gap_ls; without importing it. */
function hasGapLs(python: string[]): Promise<boolean> {
    const probe = "import importlib.util, sys; sys.exit(0 if importlib.util.find_spec('gap_ls') else 3)";
    return new Promise((resolve) => {
        execFile(python[0], [...python.slice(1), '-c', probe], { timeout: 15_000, cwd: os.homedir() }, (error) =>
            resolve(error === null),
        );
    });
}

function withServe(args: string[]): string[] {
    return args.includes('serve') ? args : [...args, 'serve'];
}

export async function findServer(folder: vscode.WorkspaceFolder | undefined): Promise<ServerCommand | NotFound> {
    const scope = folder?.uri;
    const tried: string[] = [];

    const configuredPath = commandSetting('path', scope);
    if (configuredPath !== undefined) {
        const [command, ...args] = configuredPath.map((part) => expand(part, folder));
        const found = which(command);
        if (found === undefined) {
            tried.push(`gap.path: ${command} is not an executable file`);
            return { message: `gap-ls: the gap.path setting names ${command}, which was not found. ${INSTALL_HINT}`, tried };
        }
        return { command: found, args: withServe(args), source: 'gap.path', skipped: tried };
    }

    const configuredInterpreter = commandSetting('interpreter', scope);
    if (configuredInterpreter !== undefined) {
        const python = configuredInterpreter.map((part) => expand(part, folder));
        if (await hasGapLs(python)) {
            return { command: python[0], args: [...python.slice(1), '-m', 'gap_ls', 'serve'], source: 'gap.interpreter', skipped: tried };
        }
        tried.push(`gap.interpreter: ${python.join(' ')} cannot import gap_ls (or does not run)`);
        return {
            message:
                `gap-ls: the gap.interpreter setting names ${python.join(' ')}, which cannot import gap_ls. ` +
                `Install it with "${python.join(' ')} -m pip install gap-ls", or change the setting.`,
            tried,
        };
    }

    if (vscode.workspace.isTrusted) {
        try {
            const python = await selectedInterpreter(scope);
            if (python === undefined) {
                tried.push('Python extension: not installed, or no interpreter selected');
            } else if (await hasGapLs(python)) {
                return { command: python[0], args: [...python.slice(1), '-m', 'gap_ls', 'serve'], source: 'Python extension', skipped: tried };
            } else {
                tried.push(`Python extension: the selected interpreter ${python.join(' ')} cannot import gap_ls`);
            }
        } catch (error) {
            tried.push(`Python extension: ${error instanceof Error ? error.message : String(error)}`);
        }
    } else {
        tried.push('Python extension: not asked in an untrusted workspace');
    }

    const onPath = which('gap-ls');
    if (onPath !== undefined) {
        return { command: onPath, args: ['serve'], source: 'PATH', skipped: tried };
    }
    tried.push('PATH: no gap-ls executable');
    return { message: `gap-ls: the gap-ls language server was not found. ${INSTALL_HINT}`, tried };
}

export function isNotFound(result: ServerCommand | NotFound): result is NotFound {
    return 'message' in result;
}
