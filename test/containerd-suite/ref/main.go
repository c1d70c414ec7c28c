// Command ref-snapshotter is the reference for the suite harness: containerd's
// own overlayfs snapshotter served over the snapshots gRPC API with
// containerd's snapshotservice adapter. It takes the same config.json
// (root, address) as overlaybd-snapshotter, so the harness can run both.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	snapshotsapi "github.com/containerd/containerd/api/services/snapshots/v1"
	"github.com/containerd/containerd/contrib/snapshotservice"
	"github.com/containerd/containerd/snapshots/overlay"
	"google.golang.org/grpc"
)

type config struct {
	Root    string `json:"root"`
	Address string `json:"address"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ref-snapshotter:", err)
		os.Exit(1)
	}
}

func run() error {
	if len(os.Args) != 2 {
		return fmt.Errorf("usage: ref-snapshotter CONFIG.json")
	}
	data, err := os.ReadFile(os.Args[1])
	if err != nil {
		return err
	}
	var cfg config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return fmt.Errorf("%s: %w", os.Args[1], err)
	}
	if cfg.Root == "" || cfg.Address == "" {
		return fmt.Errorf("%s: root and address must be set", os.Args[1])
	}

	sn, err := overlay.NewSnapshotter(cfg.Root)
	if err != nil {
		return err
	}
	defer sn.Close()

	if err := os.MkdirAll(filepath.Dir(cfg.Address), 0700); err != nil {
		return err
	}
	_ = os.Remove(cfg.Address)
	l, err := net.Listen("unix", cfg.Address)
	if err != nil {
		return err
	}
	server := grpc.NewServer()
	snapshotsapi.RegisterSnapshotsServer(server, snapshotservice.FromSnapshotter(sn))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		server.GracefulStop()
	}()
	return server.Serve(l)
}
