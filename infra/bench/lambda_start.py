#!/usr/bin/env python3
"""Cold-start init of the Lambda binaries: process start to the first
`GET /2018-06-01/runtime/invocation/next` (issue 14; figures in docs/deploy.md).

A minimal Lambda Runtime API listens on 127.0.0.1; each binary runs with AWS_LAMBDA_RUNTIME_API
pointing at it and its function's environment (dummy TESSERA_* values, fake credentials, an
endpoint where nothing listens, so init must make no request). `/next` is never answered: the
process is killed and the next run starts. One unmeasured run first (a failing binary fails
there), then RUNS measured ones; prints size, median, min-max, and the load average.

    python3 infra/bench/lambda_start.py $CARGO_TARGET_DIR/release 15 [binary ...]
"""
import http.server, os, socketserver, statistics, subprocess, sys, threading, time

# template.yaml's deployed binaries and their MemorySize.
BINARIES = {"tessera-api": 512, "tessera-status": 512, "tessera-status-ws": 256,
            "tessera-status-stream": 256, "tessera-planner": 1024, "tessera-chunk": 2048,
            "tessera-chunk-dlq": 256, "tessera-authorizer": 256}

arrived = threading.Event()
stamp = [0.0]


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        # Stamp first: this instant is the measurement.
        stamp[0] = time.perf_counter()
        arrived.set()
        time.sleep(30)  # never deliver an event; the process is killed meanwhile

    def do_POST(self):  # /runtime/init/error
        stamp[0] = -1.0
        arrived.set()
        self.send_response(202)
        self.end_headers()

    def log_message(self, *a):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def env(name, port):
    # Lambda's environment and nothing inherited (a stray AWS_PROFILE or RUST_LOG would change init).
    return {"PATH": "/usr/bin:/bin", "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
            "AWS_LAMBDA_FUNCTION_NAME": name, "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(BINARIES.get(name, 256)),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}", "_HANDLER": "bootstrap",
            "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "dummy",
            "AWS_SESSION_TOKEN": "dummy", "TESSERA_AWS_ENDPOINT": "http://127.0.0.1:9",
            "TESSERA_BUCKET": "tessera-data", "TESSERA_JOBS_TABLE": "tessera-jobs",
            "TESSERA_CHUNK_QUEUE_URL": "http://127.0.0.1:9/000000000000/chunk-tasks",
            "TESSERA_WS_ENDPOINT": "http://127.0.0.1:9/live",
            "TESSERA_JWT_ISSUER": "https://issuer.example.com/", "TESSERA_JWT_AUDIENCE": "tessera",
            "RUST_LOG": "info"}


def main():
    bin_dir, runs = sys.argv[1], max(1, int(sys.argv[2]))
    names = sys.argv[3:] or list(BINARIES)
    srv = Server(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    port = srv.server_address[1]
    print(f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}; {runs} runs each")
    print("| binary | size (bytes) | init median (ms) | min-max (ms) |")
    print("|---|---:|---:|---:|")
    for name in names:
        path = os.path.join(bin_dir, name)
        times = []
        for i in range(runs + 1):
            arrived.clear()
            t0 = time.perf_counter()
            p = subprocess.Popen([path], env=env(name, port), stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            ok = arrived.wait(10)
            p.kill()
            err = p.communicate()[1]
            if not ok or stamp[0] < 0:
                sys.exit(f"{name}: no /next (init error or timeout)\n{err[-2000:].decode(errors='replace')}")
            if i:
                times.append((stamp[0] - t0) * 1e3)
        print(f"| {name} | {os.path.getsize(path)} | {statistics.median(times):.1f} "
              f"| {min(times):.1f}-{max(times):.1f} |")


if __name__ == "__main__":
    main()
