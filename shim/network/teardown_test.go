package network

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/network/cni"
)

// TestTeardownContext: the caller's context bounds the CNI plugins' DEL.
// Cancelled, DEL does not run and the record stays for a retry; the retry
// with a live context runs the same plugin and removes it.
func TestTeardownContext(t *testing.T) {
	dir := t.TempDir()
	binDir := filepath.Join(dir, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ran := filepath.Join(dir, "ran")
	if err := os.WriteFile(filepath.Join(binDir, "fakeplug"), []byte("#!/bin/sh\necho \"$CNI_COMMAND\" >>"+ran+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(dir, "net.conflist")
	if err := os.WriteFile(list, []byte(`{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "fakeplug"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b := bundle.New(t.TempDir())
	a, err := cni.New(b, list, binDir, "ctx-teardown", filepath.Join(dir, "netns"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Teardown(ctx, b); err == nil {
		t.Fatal("Teardown with a cancelled context ran DEL")
	}
	if _, err := os.Stat(ran); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the plugin ran under a cancelled context: %v", err)
	}
	if _, err := cni.Read(b); err != nil {
		t.Fatalf("record gone after a failed DEL: %v", err)
	}
	if err := Teardown(context.Background(), b); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if out, err := os.ReadFile(ran); err != nil || string(out) != "DEL\n" {
		t.Errorf("plugin ran %q (%v), want one DEL", out, err)
	}
	if _, err := cni.Read(b); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record after Teardown: %v, want none", err)
	}
}
