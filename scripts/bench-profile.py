#!/usr/bin/env python3
"""bench-profile.py PERF.data... - where gpucached's time goes, by stage.

Reads `perf script` of recordings made by `PROFILE=1 scripts/bench-net.sh`
(perf record --call-graph dwarf on the daemon during one timed PUT or GET
phase) and puts every sample in one stage, by the first rule below that
one of its frames matches (leaf first). Prints, per file, each stage's
share of all the daemon's samples and of one CPU over the phase
(samples / (seconds x frequency)), and per thread kind.

The stages of a PUT (docs/benchmarks.md, "Where a PUT's time goes"):
UCX receive and fragment handling, copy into the write buffer (UCX
unpacking rendezvous fragments into our iovecs), checksum, parity, seal
(the rest of it), io_uring submission, zram compression in the submitting
thread, zram compression in io-wq workers, completion, answer; and for a
GET the rendezvous data going out (UCX's put_zcopy over a socket here).
"""
import re
import subprocess
import sys
from collections import Counter, defaultdict

# (stage, regex over one frame's symbol); first match wins, frames leaf first
RULES = [
    ("checksum (CRC32C)", r"crc32_iscsi|crc32c|frag_crc|data_crcs|chunk_crc"),
    ("parity (ISA-L)", r"gf_vect|gf_\d|ec_encode|ec_init|coder_"),
    ("zram (de)compression", r"zram|LZ4|lz4|zs_malloc|zs_obj|zcomp|zsmalloc"),
    ("io_uring submission", r"io_submit_sqes|io_uring_enter|io_uring_submit|"
                            r"uring_submit|io_wq_enqueue|io_issue_sqe"),
    ("seal (other)", r"seal_|store_seal|encode_chunks|summary_"),
    ("completion (reap, callbacks)", r"uring_reap|io_uring_peek|cqe|"
                                     r"store_poll|region_poll|uring_poll"),
    ("answer (send)", r"srv_reply|net_send_nb|net_send_data_nb|get_send|"
                      r"ucp_am_send|ucp_tag_send"),
    ("rendezvous data out (socket copy)", r"put_zcopy|rndv_rtr|sendmsg|sendv"),
    ("copy into write buffer (UCX unpack)", r"__memmove|memcpy|ucp_dt_unpack|"
                                            r"ucp_dt_iov_scatter"),
    ("UCX receive and fragment handling", r"^ucp_|^uct_|^ucs_|net_progress|"
                                          r"am_cb|rndv|tcp_|sock_|"
                                          r"libuc[pts]"),
    ("sleep / event fd", r"epoll|poll_schedule|net_wait|do_sys_poll|"
                         r"schedule|finish_task_switch"),
    ("shard loop polling (clock, retry, publish)", r"^shard_main|clock_now|"
                                                   r"srv_retry|store_pending|"
                                                   r"publish|run_done"),
]
RULES = [(n, re.compile(r)) for n, r in RULES]


def samples(path):
    out = subprocess.run(["perf", "script", "-F", "comm,tid,period,ip,sym,dso",
                          "-i", path], capture_output=True, text=True).stdout
    for block in out.split("\n\n"):
        lines = [l for l in block.split("\n") if l.strip()]
        if not lines:
            continue
        head = lines[0].split()
        comm = head[0]
        frames = []
        for l in lines[1:]:
            w = l.split(None, 1)
            if len(w) == 2:
                frames.append(w[1])
        yield comm, frames


def stage(comm, frames):
    for name, rx in RULES:
        for f in frames:
            sym = f.split("+")[0].split(" (")[0]
            if rx.search(sym) or (name.startswith("UCX") and rx.search(f)):
                if name.startswith("zram"):
                    return name + (" (io-wq workers)" if comm.startswith("iou-wrk")
                                   else " (in the submitting thread)")
                return name
    return "other" + (" (io-wq)" if comm.startswith("iou-wrk") else "")


def main():
    freq = 400.0
    secs = None
    args = sys.argv[1:]
    while args and args[0].startswith("--"):
        if args[0] == "--freq":
            freq = float(args[1])
            args = args[2:]
        elif args[0] == "--seconds":
            secs = float(args[1])
            args = args[2:]
        else:
            sys.exit("usage: bench-profile.py [--freq HZ] [--seconds S] PERF.data...")
    for path in args:
        c = Counter()
        kind = defaultdict(Counter)
        for comm, frames in samples(path):
            s = stage(comm, frames)
            c[s] += 1
            kind["io-wq workers" if comm.startswith("iou-wrk") else "daemon threads"][s] += 1
        tot = sum(c.values()) or 1
        print("%s: %d samples" % (path, tot))
        for s, n in c.most_common():
            cpu = " %5.2f CPU" % (n / (secs * freq)) if secs else ""
            print("  %-45s %5.1f%%%s" % (s, 100.0 * n / tot, cpu))
        for k, cc in sorted(kind.items()):
            n = sum(cc.values())
            cpu = " (%.2f CPU)" % (n / (secs * freq)) if secs else ""
            print("  [%s: %.1f%% of samples%s]" % (k, 100.0 * n / tot, cpu))


if __name__ == "__main__":
    main()
