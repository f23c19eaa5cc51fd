// Package bundle owns the layout of a container's bundle, the directory
// containerd makes for a task and the shim works in: which files are there,
// what each holds, and how each is read and written. No other package names
// a file in the bundle.
//
// Every file the shim writes is replaced atomically (package atomicwrite):
// the runtime, `shim delete` or containerd may read it at any time, and a
// crash must leave the old content or the new.
package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	runcshim "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2/runc"
	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/internal/atomicwrite"
)

// What containerd puts in the bundle.
const (
	// specFile is the OCI spec; the shim rewrites it for the network mode.
	specFile = "config.json"
	// rootfsDir is where the shim mounts the container's root file system.
	rootfsDir = "rootfs"
	// bootstrapFile records the shim's address (containerd 2.x).
	bootstrapFile = "bootstrap.json"
)

// What the shim and its runtime put in the bundle.
const (
	// addressFile is the shim's address for containerd 1.7, which reloads
	// it from there after a restart.
	addressFile = "address"
	// initPidFile is the init's pid, written by the runtime's create.
	initPidFile = "init.pid"
	// execPidPattern names the pid file of an exec, one per start.
	execPidPattern = "exec-*.pid"
	// runtimeLogFile is the runtime's JSON log.
	runtimeLogFile = "log.json"
	// runtimeFile says which runtime and state root created the
	// container, for `shim delete`.
	runtimeFile = "hostnet-runtime.json"
	// modeFile is the network mode the shim chose and why, for operators
	// (`hostnet ps`).
	modeFile = "hostnet-mode.json"
	// networkFile is what bridge mode set up on the host, for teardown.
	networkFile = "hostnet-network.json"
	// netnsFile pins bridge mode's network namespace.
	netnsFile = "netns"
	// hostsFile and resolvConfFile are bridge mode's /etc/hosts and
	// /etc/resolv.conf for the container.
	hostsFile      = "hosts"
	resolvConfFile = "resolv.conf"
	// cniFile is what bridge mode through CNI ran, for DEL; cniCacheDir
	// is libcni's cache of the ADD result.
	cniFile     = "hostnet-cni.json"
	cniCacheDir = "cni-cache"
)

// Bundle is a container's bundle directory.
type Bundle struct {
	// Path is the directory, as containerd names it.
	Path string
}

// New returns the bundle at path.
func New(path string) Bundle {
	return Bundle{Path: path}
}

func (b Bundle) file(name string) string {
	return filepath.Join(b.Path, name)
}

// Rootfs is where the shim mounts the root file system it is given.
func (b Bundle) Rootfs() string { return b.file(rootfsDir) }

// InitPidFile is where the runtime's create writes the init's pid.
func (b Bundle) InitPidFile() string { return b.file(initPidFile) }

// ReadInitPid reads the pid InitPidFile holds.
func (b Bundle) ReadInitPid() (int, error) {
	return runc.ReadPidFile(b.InitPidFile())
}

// NewExecPidFile creates an empty pid file for an exec the runtime starts;
// the caller removes it once it has read the pid.
func (b Bundle) NewExecPidFile() (string, error) {
	f, err := os.CreateTemp(b.Path, execPidPattern)
	if err != nil {
		return "", fmt.Errorf("failed to create exec pid file: %w", err)
	}
	f.Close()
	return f.Name(), nil
}

// RuntimeLog is the runtime's JSON log.
func (b Bundle) RuntimeLog() string { return b.file(runtimeLogFile) }

// NetNS is where bridge mode pins the container's network namespace.
func (b Bundle) NetNS() string { return b.file(netnsFile) }

// Hosts and ResolvConf are bridge mode's /etc/hosts and /etc/resolv.conf
// for the container.
func (b Bundle) Hosts() string      { return b.file(hostsFile) }
func (b Bundle) ResolvConf() string { return b.file(resolvConfFile) }

// ReadSpec reads and parses the OCI spec.
func (b Bundle) ReadSpec() (*specs.Spec, error) {
	path := b.file(specFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read OCI spec: %w", err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("failed to parse OCI spec %s: %w", path, err)
	}
	return &s, nil
}

// ReadSpecHead reads what the shim decides on before a create reads the
// spec whole (ReadSpec): the annotations (the shim's group, the network
// mode and the client that made the spec) and the namespaces, the only
// fields of the spec returned. Decoding the whole spec in a process that
// has decoded none yet costs ~3 ms, as encoding/json builds its decoders
// for each of the spec's types, and `shim start` and the shim server's
// first steps (network.Prefetch) are on every container's critical path.
// Only these fields are checked: the create's ReadSpec reports a spec that
// is otherwise malformed.
func (b Bundle) ReadSpecHead() (*specs.Spec, error) {
	path := b.file(specFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read OCI spec: %w", err)
	}
	var head struct {
		Annotations map[string]string `json:"annotations,omitempty"`
		Linux       *struct {
			Namespaces []specs.LinuxNamespace `json:"namespaces,omitempty"`
		} `json:"linux,omitempty"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("failed to parse OCI spec %s: %w", path, err)
	}
	s := &specs.Spec{Annotations: head.Annotations}
	if head.Linux != nil {
		s.Linux = &specs.Linux{Namespaces: head.Linux.Namespaces}
	}
	return s, nil
}

// WriteSpec replaces the OCI spec with s, keeping the file's mode: the
// runtime must never read a half-written config.json, and a crash must
// leave the old one intact.
func (b Bundle) WriteSpec(s *specs.Spec) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("failed to encode OCI spec: %w", err)
	}
	return b.writeKeepingMode(specFile, data)
}

func (b Bundle) writeKeepingMode(name string, data []byte) error {
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(b.file(name)); err == nil {
		mode = fi.Mode().Perm()
	}
	return atomicwrite.WriteFile(b.file(name), data, mode)
}

// WriteHosts and WriteResolvConf write the files Hosts and ResolvConf name.
func (b Bundle) WriteHosts(data []byte) error {
	return atomicwrite.WriteFile(b.Hosts(), data, 0o644)
}

func (b Bundle) WriteResolvConf(data []byte) error {
	return atomicwrite.WriteFile(b.ResolvConf(), data, 0o644)
}

// RemoveHostFiles removes what WriteHosts and WriteResolvConf wrote.
func (b Bundle) RemoveHostFiles() error {
	return b.remove(hostsFile, resolvConfFile)
}

// WriteNetwork records v, what bridge mode set up on the host, as JSON.
func (b Bundle) WriteNetwork(v any) error {
	return b.writeJSON(networkFile, v, 0o644)
}

// ReadNetwork decodes what WriteNetwork recorded into v. The error wraps
// os.ErrNotExist if there is no record.
func (b Bundle) ReadNetwork(v any) error {
	return b.readJSON(networkFile, v)
}

// RemoveNetwork removes the record WriteNetwork made.
func (b Bundle) RemoveNetwork() error {
	return b.remove(networkFile)
}

// CNICache is libcni's cache directory for the container's CNI network.
func (b Bundle) CNICache() string { return b.file(cniCacheDir) }

// WriteCNI records v, the CNI network bridge mode ran, as JSON.
func (b Bundle) WriteCNI(v any) error {
	return b.writeJSON(cniFile, v, 0o600)
}

// ReadCNI decodes what WriteCNI recorded into v. The error wraps
// os.ErrNotExist if there is no record.
func (b Bundle) ReadCNI(v any) error {
	return b.readJSON(cniFile, v)
}

// RemoveCNI removes libcni's cache and the record WriteCNI made, the
// record last.
func (b Bundle) RemoveCNI() error {
	if err := os.RemoveAll(b.CNICache()); err != nil {
		return err
	}
	return b.remove(cniFile)
}

// Mode is the network mode the shim gave a container and where it came
// from: the annotation, the configured default, a joined netns or a
// client's own network (network.Result).
type Mode struct {
	Mode string `json:"mode"`
	Why  string `json:"why"`
}

// WriteMode records m.
func (b Bundle) WriteMode(m Mode) error {
	return b.writeJSON(modeFile, m, 0o644)
}

// ReadMode returns what WriteMode recorded. The error wraps os.ErrNotExist
// if there is no record (a bundle of a shim that did not write one).
func (b Bundle) ReadMode() (Mode, error) {
	var m Mode
	err := b.readJSON(modeFile, &m)
	return m, err
}

// WriteRuntime records v, how the runtime was run, as JSON.
func (b Bundle) WriteRuntime(v any) error {
	return b.writeJSON(runtimeFile, v, 0o600)
}

// ReadRuntime decodes what WriteRuntime recorded into v. The error wraps
// os.ErrNotExist if there is no record.
func (b Bundle) ReadRuntime(v any) error {
	return b.readJSON(runtimeFile, v)
}

// RemoveRuntime removes the record once the runtime holds nothing more of
// the container (its delete succeeded): `shim delete`, which containerd
// runs after every task delete, then has no runtime to ask again.
func (b Bundle) RemoveRuntime() error {
	return b.remove(runtimeFile)
}

// WriteExit records the init's exit, for `shim delete`, where and as the
// runc shim does (containerd's exit.json).
func (b Bundle) WriteExit(e runc.Exit) error {
	return runcshim.WriteExitStatus(b.Path, e)
}

// ReadExit returns the exit WriteExit recorded; the error wraps
// os.ErrNotExist if there is none.
func (b Bundle) ReadExit() (runc.Exit, error) {
	return runcshim.ReadExitStatus(b.Path)
}

// WriteAddress records the shim's address for containerd 1.7.
func (b Bundle) WriteAddress(address string) error {
	return atomicwrite.WriteFile(b.file(addressFile), []byte(address), 0o644)
}

// ShimAddress is the address of the bundle's shim: containerd 2.x records
// it in bootstrap.json; under containerd 1.7 only WriteAddress's file has
// it. Empty if neither says.
func (b Bundle) ShimAddress() string {
	var result struct {
		Address string `json:"address"`
	}
	if b.readJSON(bootstrapFile, &result) == nil {
		return result.Address
	}
	data, err := os.ReadFile(b.file(addressFile))
	if err != nil {
		return ""
	}
	return string(data)
}

func (b Bundle) writeJSON(name string, v any, perm os.FileMode) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("failed to encode %s: %w", b.file(name), err)
	}
	return atomicwrite.WriteFile(b.file(name), data, perm)
}

func (b Bundle) readJSON(name string, v any) error {
	data, err := os.ReadFile(b.file(name))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("failed to parse %s: %w", b.file(name), err)
	}
	return nil
}

// remove removes the named files; a missing one is not an error.
func (b Bundle) remove(names ...string) error {
	var errs []error
	for _, name := range names {
		if err := os.Remove(b.file(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
