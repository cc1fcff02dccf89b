"""A real `gap-ls serve` over stdio for every test, initialised as a given editor would."""

from __future__ import annotations

import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

from tests.e2e.helpers import CLIENTS, capabilities_for

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "gap_ls", "serve"])


@pytest.fixture
def workspace(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    return tmp_path


async def start(client: LanguageClient, name: str, root, options=None):
    registrations: list = []

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(params: types.RegistrationParams):
        registrations.extend(params.registrations)

    client.registrations = registrations
    result = await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities_for(name),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name="demo")],
            initialization_options=options,
        )
    )
    client.init_result = result
    return result


@pytest_lsp.fixture(config=SERVER, params=CLIENTS)
async def client(request, lsp_client: LanguageClient, workspace):
    await start(lsp_client, request.param, workspace)
    lsp_client.client_name = request.param
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=SERVER)
async def vscode(lsp_client: LanguageClient, workspace):
    """One modern client (pull diagnostics, resolve, configuration) for feature tests."""
    await start(lsp_client, "modern-vscode", workspace)
    lsp_client.client_name = "modern-vscode"
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=SERVER)
async def pusher(lsp_client: LanguageClient, workspace):
    """A push-only client (Emacs 29: UTF-32 positions, no resolve) for version and debounce tests."""
    await start(lsp_client, "emacs", workspace, options={"debounce": 150})
    lsp_client.client_name = "emacs"
    yield
    await lsp_client.shutdown_session()
