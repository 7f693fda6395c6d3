"""Fixtures for the reliability tests."""

from __future__ import annotations

import asyncio

import pytest_asyncio


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def session_loop() -> asyncio.AbstractEventLoop:
    """The loop the async tests and the service's SDK clients run on, for synchronous
    (hypothesis) tests that drive the async entry point example by example."""
    return asyncio.get_running_loop()
