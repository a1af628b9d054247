"""A client of the bhyt-verify gRPC API written from the .proto alone, with Python's grpcio.

Generates the stubs from proto/ with grpc_tools, starts the real server binary on a synthetic
registry, and checks a valid card, an unregistered ID, a malformed ID and the health service.
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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate_stubs(out):
    import grpc_tools

    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    out.mkdir(parents=True)
    code = protoc.main([
        "protoc",
        f"-I{ROOT / 'proto'}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(ROOT / "proto/bhyt/verify/v1/coverage.proto"),
    ])
    assert code == 0, "protoc failed"
    sys.path.insert(0, str(out))
    from bhyt.verify.v1 import coverage_pb2, coverage_pb2_grpc

    return coverage_pb2, coverage_pb2_grpc


def main(binary):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        pb, rpc = generate_stubs(tmp / "stubs")
        registry = tmp / "registry.csv"
        env = dict(os.environ, BHYT_DATA_DIR=str(tmp / "data"))
        subprocess.run([binary, "generate", "--count", "400", "--seed", "3", "--out", str(registry)],
                       env=env, check=True, capture_output=True)
        subprocess.run([binary, "import", str(registry)], env=env, check=True, capture_output=True)

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
        env.update(BHYT_LISTEN=f"127.0.0.1:{port}", BHYT_HTTP_LISTEN=f"127.0.0.1:{free_port()}")
        server = subprocess.Popen([binary, "serve"], env=env, stderr=subprocess.DEVNULL)
        try:
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=30)
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="bhyt.verify.v1.VerificationService"))
            assert health.status == health_pb2.HealthCheckResponse.SERVING, health

            stub = rpc.VerificationServiceStub(channel)

            def request(request_id, citizen_id, name, dob):
                parts = [int(p) for p in dob.split("/")]
                day, month, year = ([0, 0] + parts)[-3:] if len(parts) < 3 else parts
                return pb.CheckCoverageRequest(
                    request_id=request_id, citizen_id=citizen_id, full_name=name,
                    date_of_birth=pb.Date(year=year, month=month, day=day),
                    operator=pb.Operator(full_name="Lê Thị Thu", citizen_id="079185000123"),
                    facility_code="01821", station_id="py-client",
                    evidence=pb.IdentityEvidence(method=pb.IDENTITY_METHOD_QR))

            answer = stub.CheckCoverage(request("py-1", valid["citizen_id"], valid["full_name"],
                                                valid["date_of_birth"]))
            assert answer.result == pb.CARD_VALID, answer
            assert answer.usable and answer.source_result_code == "000"
            assert answer.coverage.card_number == valid["card_number"]
            assert answer.audit_record_id

            unregistered = next(f"001{d}99{n:06d}" for d in "01" for n in range(999999, 0, -1)
                                if f"001{d}99{n:06d}" not in registered)
            answer = stub.CheckCoverage(request("py-2", unregistered, "Nguyễn Văn An", "1999"))
            assert answer.result == pb.NO_CARD_INFORMATION and not answer.HasField("coverage"), answer

            try:
                stub.CheckCoverage(request("py-3", "003099012345", "Nguyễn Văn An", "1999"))
                raise AssertionError("a malformed ID was accepted")
            except grpc.RpcError as e:
                assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, e
                assert e.details().startswith("citizen_id: "), e.details()
            print("python grpcio client: ok")
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
