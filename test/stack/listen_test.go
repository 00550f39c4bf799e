package stack_test

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// listener is one listening TCP socket from /proc/net/tcp or tcp6.
type listener struct {
	ip   net.IP
	port int
}

// testLoopbackOnly checks that every listening socket of each process in
// pids is bound to 127.0.0.1, and that each process listens on something (so
// that the check cannot pass by finding nothing).
func testLoopbackOnly(t *testing.T, pids []int) {
	for _, pid := range pids {
		ls, err := listenersOf(pid)
		if err != nil {
			t.Fatalf("pid %d: %v", pid, err)
		}
		var addrs []string
		for _, l := range ls {
			addr := l.String()
			addrs = append(addrs, addr)
			if !l.ip.Equal(net.IPv4(127, 0, 0, 1)) {
				t.Errorf("pid %d (%s) listens on %s, want 127.0.0.1 only", pid, comm(pid), addr)
			}
		}
		if len(addrs) == 0 {
			t.Errorf("pid %d (%s) has no listening socket", pid, comm(pid))
		}
		t.Logf("pid %d (%s) listens on %v", pid, comm(pid), addrs)
	}
}

// listenersOf returns the listening TCP sockets (IPv4 and IPv6) that pid
// has open.
func listenersOf(pid int) ([]listener, error) {
	listeners := map[string]listener{} // socket inode -> address
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		if err := readListeners(f, listeners); err != nil {
			return nil, err
		}
	}
	inodes, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	var out []listener
	for _, ino := range inodes {
		if l, ok := listeners[ino]; ok {
			out = append(out, l)
		}
	}
	return out, nil
}

// String formats the listener as host:port.
func (l listener) String() string { return net.JoinHostPort(l.ip.String(), strconv.Itoa(l.port)) }

// readListeners adds the sockets in LISTEN state (0A) of a /proc/net/tcp*
// file to m, keyed by inode.
func readListeners(path string, m map[string]listener) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" {
			continue
		}
		l, err := parseProcAddr(fields[1])
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		m[fields[9]] = l
	}
	return sc.Err()
}

// parseProcAddr parses "0100007F:1F90" (IPv4) or the 32-hex-digit IPv6 form:
// the address is in 32-bit words of host (little-endian) byte order.
func parseProcAddr(s string) (listener, error) {
	hostHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return listener{}, fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(hostHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return listener{}, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseInt(portHex, 16, 32)
	if err != nil {
		return listener{}, fmt.Errorf("bad port in %q: %w", s, err)
	}
	return listener{ip: net.IP(raw), port: int(port)}, nil
}

// socketInodes returns the inodes of the sockets that pid has open.
func socketInodes(pid int) ([]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var inodes []string
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // closed meanwhile
		}
		if ino, ok := strings.CutPrefix(link, "socket:["); ok {
			inodes = append(inodes, strings.TrimSuffix(ino, "]"))
		}
	}
	return inodes, nil
}

// comm returns the process's command name, for messages.
func comm(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return strings.TrimSpace(string(b))
}
