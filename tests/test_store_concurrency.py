"""Two processes on one store: a reader is never blocked by a writer and never sees half a write;
a second writer waits for the first instead of failing."""

import subprocess
import sys
import textwrap
import time

from alem.store import Store

READER = textwrap.dedent(
    """
    import sys, time
    from alem.store import Store
    started = time.monotonic()
    store = Store.open(sys.argv[1], create=False)
    counts = store.hop_counts()
    print(counts["candidate"], counts["approved"], round(time.monotonic() - started, 3))
    """
)

WRITER = textwrap.dedent(
    """
    import sys
    from alem.store import Store
    store = Store.open(sys.argv[1], create=False, busy_timeout_s=20)
    print("ready", flush=True)
    store.approve(["b"], who="second-writer")
    print("approved b")
    """
)


def _run(script, path, wait=True):
    process = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if not wait:
        return process
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out.split()


def test_a_reader_process_sees_the_last_commit_while_a_write_is_open(tmp_path, tiny_hop):
    path = tmp_path / "alem.sqlite"
    with Store.open(path) as store:
        store.add_hops([tiny_hop("a", 0.4), tiny_hop("b", 0.5)])
        with store.transaction():
            store.add_hops([tiny_hop("c", 0.6)])
            store.approve(["a"], who="alice")
            candidates, approved, seconds = _run(READER, path)
            # the open write is invisible and did not block the reader
            assert (candidates, approved) == ("2", "0") and float(seconds) < 1.0
        candidates, approved, _ = _run(READER, path)
        assert (candidates, approved) == ("2", "1")


def test_a_second_writer_waits_for_the_first_and_then_succeeds(tmp_path, tiny_hop):
    path = tmp_path / "alem.sqlite"
    with Store.open(path) as store:
        store.add_hops([tiny_hop("a", 0.4), tiny_hop("b", 0.5)])
        with store.transaction():
            store.approve(["a"], who="alice")
            writer = _run(WRITER, path, wait=False)
            assert writer.stdout.readline().strip() == "ready"
            time.sleep(1.0)
            assert writer.poll() is None  # it waits on our write lock instead of failing
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        assert out.strip() == "approved b"
        assert store.hop_counts()["approved"] == 2
        assert [d.who for d in store.decisions()] == ["alice", "second-writer"]
