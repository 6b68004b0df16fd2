"""hostile.py - clients that misbehave, for tests/api_hostile.test.sh.

    hostile.py slow-header PORT GAP_S MAX_S   trickles a request header, one byte
        every GAP_S seconds; prints "cut AFTER" when the server closes the
        connection (AFTER: seconds), or "open" if it still is after MAX_S
    hostile.py slow-body PORT GAP_S MAX_S     complete headers, then a body of
        Content-Length 4096 one byte every GAP_S seconds; the same output
    hostile.py hold PORT N SECONDS            opens N connections that send
        nothing and holds them SECONDS (prints "held N" once all are open)
    hostile.py headers PORT COUNT SIZE        one request with COUNT extra
        header fields of SIZE bytes each; prints the status code
"""
import socket
import sys
import time


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.settimeout(0.05)
    return s


def closed_by_peer(s):
    try:
        data = s.recv(65536)
        return data == b"" or data.startswith(b"HTTP/")  # an answer also ends it
    except socket.timeout:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True


def trickle(port, prefix, payload, gap, max_s):
    s = connect(port)
    s.sendall(prefix)
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < max_s:
        if closed_by_peer(s):
            print("cut %.1f" % (time.monotonic() - start))
            return
        if i < len(payload):
            try:
                s.sendall(payload[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                print("cut %.1f" % (time.monotonic() - start))
                return
            i += 1
        time.sleep(gap)
    print("open")


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    if mode == "slow-header":
        header = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 4000 + b"\r\n\r\n"
        trickle(port, b"", header, float(sys.argv[3]), float(sys.argv[4]))
    elif mode == "slow-body":
        head = (b"POST /v1/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 4096\r\n\r\n")
        trickle(port, head, b" " * 4096, float(sys.argv[3]), float(sys.argv[4]))
    elif mode == "hold":
        n, secs = int(sys.argv[3]), float(sys.argv[4])
        socks = [connect(port) for _ in range(n)]
        print("held %d" % len(socks), flush=True)
        time.sleep(secs)
    elif mode == "headers":
        count, size = int(sys.argv[3]), int(sys.argv[4])
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        req += b"".join(b"X-H%d: %s\r\n" % (i, b"v" * size) for i in range(count)) + b"\r\n"
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        try:
            s.sendall(req)
            data = b""
            while b"\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        except (BrokenPipeError, ConnectionResetError):
            data = b""
        print(data.split(b" ")[1].decode() if data.startswith(b"HTTP/") else "closed")
    else:
        sys.exit("unknown mode " + mode)


main()
