"""Issue 11 (3, 4): the interrupts module on its own, each case in a child interpreter (the test
process's own signal handlers stay as pytest set them)."""

from __future__ import annotations

import subprocess
import sys

from treeutil import env


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), timeout=60)


def test_held_defers_a_signal_until_the_block_ends() -> None:
    p = _child(
        "import os, signal\n"
        "from shadowvault import interrupts\n"
        "interrupts.install()\n"
        "steps = []\n"
        "try:\n"
        "    with interrupts.held():\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        for _ in range(1000): pass\n"
        "        steps.append('block finished')\n"
        "except interrupts.Interrupted as e:\n"
        "    steps.append(f'interrupted {e.exit_code}')\n"
        "print(steps)\n"
    )
    assert p.stdout.strip() == "['block finished', 'interrupted 143']", p.stderr


def test_a_second_signal_does_not_cut_the_cleanup_short() -> None:
    p = _child(
        "import os, signal, time\n"
        "from shadowvault import interrupts\n"
        "interrupts.install()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT); time.sleep(5)\n"
        "except KeyboardInterrupt as e:\n"
        "    os.kill(os.getpid(), signal.SIGTERM); time.sleep(0.05)\n"
        "    print('cleaned up', interrupts.exit_code(e))\n"
    )
    assert p.stdout.strip() == "cleaned up 130", p.stderr


def test_entry_point_gives_one_line_and_the_code_then_restores_a_library_callers_handlers() -> None:
    p = _child(
        "import os, signal, sys\n"
        "from shadowvault import interrupts\n"
        "@interrupts.entry_point\n"
        "def main():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    for _ in range(10**6): pass\n"
        "    return 0\n"
        "print(main(), main(), signal.getsignal(signal.SIGINT) is signal.default_int_handler,"
        " signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)\n"
    )
    assert p.stdout.strip() == "143 143 True True", p.stderr
    assert p.stderr == "interrupted\ninterrupted\n"


def test_the_program_ends_at_once_on_a_signal_outside_a_command() -> None:
    p = _child(
        "import os, signal\n"
        "from shadowvault import interrupts\n"
        "interrupts.install(program=True)\n"
        "os.kill(os.getpid(), signal.SIGINT)\n"
        "for _ in range(10**6): pass\n"
        "print('not reached')\n"
    )
    assert (p.returncode, p.stdout, p.stderr) == (130, "", "interrupted\n")


def test_an_interruption_swallowed_by_a_finaliser_is_delivered_again() -> None:
    p = _child(
        "import gc, os, signal, time\n"
        "from shadowvault import interrupts\n"
        "interrupts.install()\n"
        "class Slow:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        for _ in range(10**5): pass\n"
        "try:\n"
        "    Slow()\n"
        "    time.sleep(5)\n"
        "    print('lost')\n"
        "except interrupts.Interrupted as e:\n"
        "    print('delivered', e.exit_code)\n"
    )
    assert p.stdout.strip() == "delivered 130", p.stdout + p.stderr
    assert "Exception ignored" not in p.stderr
