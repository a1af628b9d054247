"""A client of the bhyt-verify gRPC API written from the .proto alone, with Python's grpcio.

Generates the stubs from proto/ with grpc_tools at test time, makes a private CA and a desk's
certificate with the CLI, starts the real server binary (mutual TLS, its default) on a synthetic
registry, and checks: no client certificate -> UNAVAILABLE; with the desk's certificate, health
(grpc.health.v1) SERVING, a valid card, an unregistered
but well-formed citizen ID (OK, NO_CARD_INFORMATION) and malformed citizen IDs (INVALID_ARGUMENT
naming the field). Exits non-zero on the first failed check.

Usage: test_client.py PATH_TO_BHYT_VERIFY_BINARY
"""

import csv
import datetime
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"


def check(condition, what):
    """An assertion that `python -O` cannot remove."""
    if not condition:
        raise AssertionError(what)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate_stubs(out):
    """Python modules for every .proto under proto/, as any integrator would make them."""
    import grpc_tools

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True)
    protos = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    code = protoc.main(["protoc", f"-I{PROTO}", f"-I{well_known}", f"--python_out={out}",
                        f"--grpc_python_out={out}", *protos])
    check(code == 0, f"protoc failed on {protos}")
    sys.path.insert(0, str(out))
    from bhyt.verify.v1 import coverage_pb2, coverage_pb2_grpc

    return coverage_pb2, coverage_pb2_grpc


# ---- The server's command line: the only part that knows more than the .proto. -------------

def seed_registry(binary, env, csv_path):
    """A synthetic registry written as CSV (the import format) and imported."""
    for args in (["generate", "--count", "400", "--seed", "3", "--out", str(csv_path)],
                 ["import", str(csv_path)]):
        run = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
        check(run.returncode == 0, f"bhyt-verify {args[0]} failed:\n{run.stderr}")


def make_certificates(binary, env):
    """A private CA, the server's certificate and a desk's (01821/py-client), with the CLI."""
    for args in (["pki", "init"],
                 ["pki", "issue-server", "--dns", "localhost", "--ip", "127.0.0.1"],
                 ["pki", "issue", "--role", "station", "--facility", "01821",
                  "--station", "py-client", "--name", "py-client"]):
        run = subprocess.run([binary, *args], env=env, capture_output=True, text=True)
        check(run.returncode == 0, f"bhyt-verify {' '.join(args)} failed:\n{run.stderr}")
    pki = pathlib.Path(env["BHYT_DATA_DIR"]) / "pki"
    return (pki / "ca.pem").read_bytes(), (pki / "issued/py-client.key").read_bytes(), \
        (pki / "issued/py-client.pem").read_bytes()


def start_server(binary, env, port, log):
    """`bhyt-verify serve` on 127.0.0.1:port; configuration through BHYT_* variables."""
    env = dict(env, BHYT_LISTEN=f"127.0.0.1:{port}", BHYT_HTTP_LISTEN=f"127.0.0.1:{free_port()}")
    return subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)

# ----------------------------------------------------------------------------------------------


def wait_until_serving(server, channel, log_path):
    """The channel is ready; fails at once, with the server's log, if the server exits."""
    deadline = time.monotonic() + 60
    while True:
        try:
            grpc.channel_ready_future(channel).result(timeout=0.5)
            return
        except grpc.FutureTimeoutError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the server did not come up (exit status {server.poll()}):\n"
                                 + log_path.read_text(errors="replace"))


def main(binary):
    with tempfile.TemporaryDirectory(prefix="bhyt-py") as tmp:
        tmp = pathlib.Path(tmp)
        pb, rpc = generate_stubs(tmp / "stubs")
        env = dict(os.environ, BHYT_DATA_DIR=str(tmp / "data"))
        registry = tmp / "registry.csv"
        seed_registry(binary, env, registry)
        ca, key, cert = make_certificates(binary, env)

        today = datetime.date.today().isoformat()
        with open(registry, encoding="utf-8") as f:
            rows = list(csv.DictReader(f))

        def iso(d):  # dd/MM/yyyy -> yyyy-MM-dd
            return "-".join(reversed(d.split("/")))

        valid = next(r for r in rows if r["status"] == "active" and not r["replaced_by"]
                     and r["insurer"] == "social_security" and r["citizen_id"]
                     and iso(r["valid_from"]) <= today < iso(r["valid_to"]))
        registered = {r["citizen_id"] for r in rows}

        port = free_port()
        log_path = tmp / "server.log"
        with open(log_path, "wb") as log:
            server = start_server(binary, env, port, log)
        try:
            # Mutual TLS, as every client of the service: the desk's certificate says who it is.
            target, host = f"127.0.0.1:{port}", (("grpc.ssl_target_name_override", "localhost"),)
            credentials = grpc.ssl_channel_credentials(ca, key, cert)
            channel = grpc.secure_channel(target, credentials, options=host)
            wait_until_serving(server, channel, log_path)

            # Without a client certificate the handshake is refused: UNAVAILABLE.
            anonymous = grpc.secure_channel(target, grpc.ssl_channel_credentials(ca), options=host)
            try:
                health_pb2_grpc.HealthStub(anonymous).Check(health_pb2.HealthCheckRequest(),
                                                            timeout=10)
            except grpc.RpcError as e:
                check(e.code() == grpc.StatusCode.UNAVAILABLE, f"no certificate: {e}")
            else:
                raise AssertionError("a client without a certificate was served")
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="bhyt.verify.v1.VerificationService"),
                timeout=10)
            check(health.status == health_pb2.HealthCheckResponse.SERVING, health)

            stub = rpc.VerificationServiceStub(channel)

            def request(request_id, citizen_id, name, dob):
                parts = [int(p) for p in dob.split("/")]
                day, month, year = parts if len(parts) == 3 else [0, 0, parts[-1]]
                return pb.CheckCoverageRequest(
                    request_id=request_id, citizen_id=citizen_id, full_name=name,
                    date_of_birth=pb.Date(year=year, month=month, day=day),
                    operator=pb.Operator(full_name="Lê Thị Thu", citizen_id="079185000123"),
                    facility_code="01821", station_id="py-client",
                    evidence=pb.IdentityEvidence(method=pb.IDENTITY_METHOD_TYPED))

            def check_coverage(req):
                return stub.CheckCoverage(req, timeout=30)

            answer = check_coverage(request("py-1", valid["citizen_id"], valid["full_name"],
                                            valid["date_of_birth"]))
            check(answer.result == pb.CARD_VALID, answer)
            check(answer.usable and answer.source_result_code == "000", answer)
            check(answer.coverage.card_number == valid["card_number"], answer)
            check(answer.audit_record_id, answer)

            # Well-formed (Hà Nội, born 1999) but in no registry: an answer, not an error.
            unregistered = next(i for d in "01" for n in range(999999, 0, -1)
                                if (i := f"001{d}99{n:06d}") not in registered)
            answer = check_coverage(request("py-2", unregistered, "Nguyễn Văn An", "1999"))
            check(answer.result == pb.NO_CARD_INFORMATION and not answer.HasField("coverage"),
                  answer)

            # Typed wrong: no province 003, too short, not digits.
            for n, bad in enumerate(["003099012345", "00109901234", "00109901234X"]):
                try:
                    check_coverage(request(f"py-bad-{n}", bad, "Nguyễn Văn An", "1999"))
                except grpc.RpcError as e:
                    check(e.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{bad}: {e}")
                    check(e.details().startswith("citizen_id: "), f"{bad}: {e.details()}")
                    check(bad not in e.details(), f"the error repeats the ID: {e.details()}")
                else:
                    raise AssertionError(f"a malformed citizen ID was accepted: {bad}")
            print("python grpcio client: ok")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
