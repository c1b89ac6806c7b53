"""The profiles screen driven by keys over the shipped presets."""

from __future__ import annotations

import pytest
from textual.widgets import Static

from console.app import ConsoleApp
from console.screens.profiles import ProfilesScreen, command_text, lint_summary
from console.session import Session
from tests.screen_helpers import DOWN_URL, wait_until

PRESETS = {"gemma3-270m-cpu", "gemma3-270m-cpu-ngram", "gemma4-26b-baseline", "gemma4-26b-mtp"}


def text_of(screen: ProfilesScreen, wid: str) -> str:
    return str(screen.query_one(wid, Static).render())


async def open_profiles(pilot, app: ConsoleApp) -> ProfilesScreen:
    screen = app.screen
    assert isinstance(screen, ProfilesScreen)
    await wait_until(pilot, lambda: screen.profiles, timeout=20, what="the profile list")
    return screen


@pytest.mark.usefixtures("private_state")
async def test_lists_presets_filters_and_activates() -> None:
    app = ConsoleApp(Session(url=DOWN_URL), start_mode="profiles")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_profiles(pilot, app)
        assert set(screen.shown_names) >= PRESETS

        await pilot.press("slash", *"ngram")
        await pilot.pause()
        assert screen.shown_names == ["gemma3-270m-cpu-ngram"]
        assert screen.selected is not None and screen.selected.name == "gemma3-270m-cpu-ngram"
        assert "speculative" in text_of(screen, "#prof-command")
        assert "ngram" in text_of(screen, "#prof-details")

        await pilot.press("enter")  # back to the list
        await pilot.press("a")
        await wait_until(
            pilot,
            lambda: app.session.profile_name == "gemma3-270m-cpu-ngram",
            timeout=10,
            what="the profile to become active",
        )
        assert app.session.url == "http://127.0.0.1:8000"
        await pilot.pause()
        assert "●" in str(screen.query_one("#prof-list").get_option_at_index(0).prompt)

        await pilot.press("escape")
        await pilot.pause()
        assert set(screen.shown_names) >= PRESETS


@pytest.mark.usefixtures("private_state")
async def test_docker_profile_shows_run_line_dockerfile_and_lint_fixes() -> None:
    app = ConsoleApp(Session(url=DOWN_URL), start_mode="profiles")
    async with app.run_test(size=(160, 48)) as pilot:
        screen = await open_profiles(pilot, app)
        await pilot.press("slash", *"26b-mtp", "enter")
        await pilot.pause()
        assert screen.selected is not None and screen.selected.name == "gemma4-26b-mtp"
        command = text_of(screen, "#prof-command")
        assert command.startswith("docker run")
        assert "--speculative-config" in command
        assert "HF_TOKEN" not in command or "${HF_TOKEN}" in command or "***" in command
        dockerfile = text_of(screen, "#prof-dockerfile")
        assert dockerfile.startswith("FROM ") or "\nFROM " in dockerfile

        await wait_until(
            pilot, lambda: "gemma4-26b-mtp" in screen.findings, timeout=30, what="lint findings"
        )
        findings = screen.findings["gemma4-26b-mtp"]
        lint = text_of(screen, "#prof-lint")
        tab = str(screen.query_one("#prof-tabs").get_tab("tab-lint").label)
        assert tab == f"Lint ({lint_summary(findings)})"
        for f in findings:
            assert f.rule_id in lint
            if f.fix:
                assert "fix:" in lint
        # Switch to the Lint tab by clicking it.
        await pilot.click("#prof-tabs Tab#--content-tab-tab-lint")
        await pilot.pause()
        assert screen.query_one("#prof-tabs").active == "tab-lint"


def test_local_command_is_the_argv_one_flag_per_line() -> None:
    from console.profiles import display_argv, load_profile

    profile = load_profile("gemma3-270m-cpu")
    text = command_text(profile)
    assert " \\\n  --" in text
    # Same tokens as the argv the runtime runs (quoted for the shell).
    flat = text.replace(" \\\n  ", " ")
    import shlex

    assert shlex.split(flat) == display_argv(profile)
