/**
 * The interpreter selected in the Python extension (`ms-python.python`), read through its
 * public API when that extension is installed; gap-ls does not require it. Only the members
 * used here are declared, after the documented API (the `@vscode/python-extension` facade:
 * `environments.getActiveEnvironmentPath`, `environments.resolveEnvironment`,
 * `environments.onDidChangeActiveEnvironmentPath`) and the older
 * `settings.getExecutionDetails(resource).execCommand`.
 */

import * as vscode from 'vscode';

export const PYTHON_EXTENSION_ID = 'ms-python.python';

interface EnvironmentPath {
    readonly id: string;
    readonly path: string;
}

interface ResolvedEnvironment {
    readonly executable: { readonly uri: vscode.Uri | undefined };
}

interface PythonExtensionApi {
    readonly ready?: Promise<void>;
    readonly environments?: {
        getActiveEnvironmentPath(resource?: vscode.Uri): EnvironmentPath;
        resolveEnvironment(environment: EnvironmentPath | string): Promise<ResolvedEnvironment | undefined>;
        readonly onDidChangeActiveEnvironmentPath: vscode.Event<unknown>;
    };
    readonly settings?: {
        getExecutionDetails(resource?: vscode.Uri): { execCommand: string[] | undefined };
        readonly onDidChangeExecutionDetails?: vscode.Event<vscode.Uri | undefined>;
    };
}

const TIMEOUT_MS = 20_000;

function withTimeout<T>(promise: Thenable<T>, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${what} took longer than ${TIMEOUT_MS / 1000} s`)), TIMEOUT_MS);
        promise.then(
            (value) => {
                clearTimeout(timer);
                resolve(value);
            },
            (error: unknown) => {
                clearTimeout(timer);
                reject(error instanceof Error ? error : new Error(String(error)));
            },
        );
    });
}

async function api(): Promise<PythonExtensionApi | undefined> {
    const extension = vscode.extensions.getExtension<PythonExtensionApi>(PYTHON_EXTENSION_ID);
    if (extension === undefined) {
        return undefined;
    }
    const exports = extension.isActive ? extension.exports : await withTimeout(extension.activate(), 'Activating the Python extension');
    if (exports?.ready !== undefined) {
        await withTimeout(exports.ready, 'Waiting for the Python extension');
    }
    return exports;
}

/**
 * The command that runs the selected interpreter (`[python]`, or `[conda, run, ...]` from the
 * older API), or undefined when the Python extension is absent or has none selected.
 */
export async function selectedInterpreter(resource: vscode.Uri | undefined): Promise<string[] | undefined> {
    const python = await api();
    if (python === undefined) {
        return undefined;
    }
    if (python.environments !== undefined) {
        const active = python.environments.getActiveEnvironmentPath(resource);
        const resolved = await withTimeout(python.environments.resolveEnvironment(active), 'Resolving the Python environment');
        const executable = resolved?.executable.uri?.fsPath;
        if (executable) {
            return [executable];
        }
    }
    const command = python.settings?.getExecutionDetails(resource).execCommand;
    return command && command.length > 0 ? command : undefined;
}

/** Calls `listener` when the interpreter selected in the Python extension changes. */
export async function onDidChangeInterpreter(listener: () => void): Promise<vscode.Disposable | undefined> {
    const python = await api();
    const event = python?.environments?.onDidChangeActiveEnvironmentPath ?? python?.settings?.onDidChangeExecutionDetails;
    return event?.(() => listener());
}
