"""Shared pytest set-up. Real-server and real-engine fixtures live in their
own plugin modules so each area owns its fixtures."""

pytest_plugins = [
    "tests.fixtures.vllm_server",
    "tests.fixtures.docker_engine",
    "tests.fixtures.hostile_server",
    "tests.fixtures.sshd",
]
