// Package suite runs containerd's generic snapshotter test suite
// (snapshots/testsuite, containerd 1.6.20) against an out-of-process
// snapshotter reached over containerd's snapshots gRPC API, the way
// containerd reaches a proxy snapshotter plugin.
//
// The snapshotter command comes from OBD_SNAPSHOTTER_CMD (a shell command
// line); the harness appends the path of a config.json it writes per case.
package suite

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/log"
	"github.com/containerd/containerd/pkg/testutil"
	"github.com/containerd/containerd/snapshots"
	"github.com/containerd/containerd/snapshots/proxy"
	"github.com/containerd/containerd/snapshots/testsuite"
	"google.golang.org/grpc"
)

const snapshotterName = "obd"

// TestSnapshotter is the single entry point; each suite case is a subtest
// named TestSnapshotter/<Case>.
func TestSnapshotter(t *testing.T) {
	testutil.RequiresRoot(t)
	if os.Getenv("OBD_SNAPSHOTTER_CMD") == "" {
		t.Fatal("OBD_SNAPSHOTTER_CMD is not set: give the snapshotter command line (the config path is appended)")
	}
	testsuite.SnapshotterSuite(t, snapshotterName, newSnapshotter)
}

// newSnapshotter starts one snapshotter process whose state lives under root
// and returns a proxy client for it plus a cleanup that stops the process.
func newSnapshotter(ctx context.Context, root string) (snapshots.Snapshotter, func() error, error) {
	socket := filepath.Join(root, "obd.sock")
	configPath := filepath.Join(root, "config.json")
	if err := writeConfig(configPath, filepath.Join(root, "state"), socket); err != nil {
		return nil, nil, err
	}

	proc, err := startProcess(ctx, configPath)
	if err != nil {
		return nil, nil, err
	}

	conn, err := dialWhenReady(ctx, proc, socket, startTimeout())
	if err != nil {
		proc.stop()
		return nil, nil, err
	}

	cleanup := func() error {
		closeErr := conn.Close()
		if err := proc.stop(); err != nil {
			return err
		}
		return closeErr
	}
	return proxy.NewSnapshotter(snapshotsapi.NewSnapshotsClient(conn), snapshotterName), cleanup, nil
}

// writeConfig writes upstream's config.json shape: root and address, merged
// over any extra keys given as a JSON object in OBD_SNAPSHOTTER_CONFIG.
func writeConfig(path, stateRoot, socket string) error {
	config := map[string]interface{}{}
	if extra := os.Getenv("OBD_SNAPSHOTTER_CONFIG"); extra != "" {
		if err := json.Unmarshal([]byte(extra), &config); err != nil {
			return fmt.Errorf("OBD_SNAPSHOTTER_CONFIG is not a JSON object: %w", err)
		}
	}
	config["root"] = stateRoot
	config["address"] = socket
	data, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0600)
}

func startTimeout() time.Duration {
	if s := os.Getenv("OBD_SNAPSHOTTER_START_TIMEOUT"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs > 0 {
			return time.Duration(secs) * time.Second
		}
	}
	return 60 * time.Second
}

// process is a running snapshotter whose output is forwarded to the test log.
type process struct {
	cmd      *exec.Cmd
	exited   chan struct{} // closed once Wait returned
	waitErr  error
	drained  sync.WaitGroup // output copiers
	stopOnce sync.Once
	stopErr  error
}

func startProcess(ctx context.Context, configPath string) (*process, error) {
	// exec keeps the snapshotter as our direct child so signals reach it.
	cmd := exec.Command("/bin/sh", "-c", `exec `+os.Getenv("OBD_SNAPSHOTTER_CMD")+` "$1"`, "sh", configPath)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start snapshotter %q: %w", os.Getenv("OBD_SNAPSHOTTER_CMD"), err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	// The test's logger is per test (logtest.WithT): dropping the caller only
	// shortens the forwarded lines, which all come from the copier below.
	log.G(ctx).Logger.SetReportCaller(false)
	logger := log.G(ctx).WithField("snapshotter", cmd.Process.Pid)
	p.drained.Add(2)
	for _, r := range []io.Reader{stdout, stderr} {
		go func(r io.Reader) {
			defer p.drained.Done()
			scanner := bufio.NewScanner(r)
			scanner.Buffer(make([]byte, 64*1024), 1024*1024)
			for scanner.Scan() {
				logger.Info(scanner.Text())
			}
		}(r)
	}
	go func() {
		// Wait only after the pipes are drained, as os/exec requires.
		p.drained.Wait()
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop sends SIGTERM, then SIGKILL to the whole process group after 10s, and
// waits for exit so no output is logged after the test ends.
func (p *process) stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.exited:
			p.stopErr = fmt.Errorf("snapshotter exited before cleanup: %v", p.waitErr)
			return
		default:
		}
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
			p.stopErr = fmt.Errorf("snapshotter ignored SIGTERM for 10s and was killed")
			return
		}
		// A signal-terminated exit is fine: the snapshotter may not trap it.
		if exitErr, ok := p.waitErr.(*exec.ExitError); ok && !exitErr.Exited() {
			return
		}
		if p.waitErr != nil {
			p.stopErr = fmt.Errorf("snapshotter exit after SIGTERM: %v", p.waitErr)
		}
	})
	return p.stopErr
}

// dialWhenReady waits for the socket to accept a connection, failing early
// if the process exits first.
func dialWhenReady(ctx context.Context, p *process, socket string, timeout time.Duration) (*grpc.ClientConn, error) {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.exited:
			return nil, fmt.Errorf("snapshotter exited before serving %s: %v", socket, p.waitErr)
		default:
		}
		if c, err := net.DialTimeout("unix", socket, time.Second); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("snapshotter did not listen on %s within %s", socket, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", addr)
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return grpc.DialContext(dialCtx, socket,
		grpc.WithInsecure(),
		// The default :authority would be the socket path; HTTP/2 servers such
		// as Node's reject a '/' there (RST_STREAM PROTOCOL_ERROR), so send
		// what containerd's own dialer sends.
		grpc.WithAuthority("localhost"),
		grpc.WithBlock(),
		grpc.WithContextDialer(dialer),
	)
}
