package main

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// buildSchema changes whenever the layout or flags of the build cache change,
// so stale caches are rebuilt.
const buildSchema = "3"

// Suite is a built runtime-tools validation suite.
type Suite struct {
	Module  string   `json:"module"`
	Version string   `json:"version"`
	Sum     string   `json:"sum"`
	Dir     string   `json:"dir"`      // cache directory
	ModMode string   `json:"mod_mode"` // -mod= used for the build
	Tests   []string `json:"tests"`
	Cached  bool     `json:"cached"`
}

func (s *Suite) runtimetest() string     { return filepath.Join(s.Dir, "runtimetest") }
func (s *Suite) rootfs() string          { return filepath.Join(s.Dir, rootfsName()) }
func (s *Suite) testBin(n string) string { return filepath.Join(s.Dir, "tests", n) }

func rootfsName() string { return fmt.Sprintf("rootfs-%s.tar.gz", runtime.GOARCH) }

type modInfo struct {
	Path, Version, Dir, Sum, Error string
}

// goEnv is the environment for every go command the harness runs: no
// workspace, no toolchain switching, no inherited GOFLAGS.
func goEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "GOFLAGS", "GOWORK", "GOTOOLCHAIN", "CGO_ENABLED", "GOOS", "GOARCH":
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "GOWORK=off", "GOTOOLCHAIN=local", "CGO_ENABLED=0")
	return append(env, extra...)
}

func runGo(gobin, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.Command(gobin, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w\n%s", gobin, strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// downloadModule finds the module in the module cache, downloading it
// through the module proxy the first time.
func downloadModule(gobin, scratch, module, version string) (*modInfo, error) {
	out, err := runGo(gobin, scratch, goEnv("GOFLAGS=-mod=mod"), "mod", "download", "-json", module+"@"+version)
	var mi modInfo
	if jerr := json.Unmarshal(out, &mi); jerr != nil {
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("go mod download: %w", jerr)
	}
	if mi.Error != "" {
		return nil, fmt.Errorf("go mod download %s@%s: %s", module, version, mi.Error)
	}
	if err != nil {
		return nil, err
	}
	if mi.Dir == "" {
		return nil, fmt.Errorf("go mod download %s@%s: no Dir", module, version)
	}
	return &mi, nil
}

// BuildSuite returns the built suite from the cache, building it first when
// the cache is missing or was built by another Go toolchain or schema.
func BuildSuite(gobin, cacheRoot, module, version string, rebuild bool, logf func(string, ...any)) (*Suite, error) {
	if err := os.MkdirAll(cacheRoot, 0o755); err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(cacheRoot, ".scratch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)

	mi, err := downloadModule(gobin, scratch, module, version)
	if err != nil {
		return nil, err
	}
	gover, err := runGo(gobin, scratch, goEnv(), "env", "GOVERSION")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%s\n%s\n%s\n", buildSchema, mi.Path, mi.Version, mi.Sum, strings.TrimSpace(string(gover)), runtime.GOARCH)
	key := hex.EncodeToString(h.Sum(nil))

	dir := filepath.Join(cacheRoot, mi.Version)
	if !rebuild {
		if s, err := loadCached(dir, key); err == nil {
			s.Cached = true
			return s, nil
		}
	}

	logf("building %s@%s into %s", mi.Path, mi.Version, dir)
	// Copy the read-only module into a writable source tree.
	src := filepath.Join(scratch, "src")
	if err := copyTree(mi.Dir, src); err != nil {
		return nil, fmt.Errorf("copy module: %w", err)
	}
	// Use the module's vendor directory when it is complete. Module zips
	// drop vendor/ except vendor/modules.txt, so from the module cache it
	// normally is not: then build against go.sum, with the dependencies
	// from the module cache/proxy (-mod=readonly fails on any go.sum gap).
	modMode := "vendor"
	if !vendorComplete(src) {
		modMode = "readonly"
		if err := os.RemoveAll(filepath.Join(src, "vendor")); err != nil {
			return nil, err
		}
		logf("note: the module's vendor/ holds only modules.txt (module zips strip vendor/); building with -mod=readonly against its go.sum")
	}

	tests, err := listTests(src)
	if err != nil {
		return nil, err
	}
	out := filepath.Join(scratch, "out")
	if err := os.MkdirAll(filepath.Join(out, "tests"), 0o755); err != nil {
		return nil, err
	}
	env := goEnv("GOFLAGS=-mod=" + modMode)
	// runtimetest runs inside the container's busybox rootfs: static.
	if _, err := runGo(gobin, src, env, "build", "-trimpath", "-tags", "netgo osusergo",
		"-ldflags", "-s -w -extldflags -static", "-o", filepath.Join(out, "runtimetest"), "./cmd/runtimetest"); err != nil {
		return nil, err
	}
	if err := checkStatic(filepath.Join(out, "runtimetest")); err != nil {
		return nil, err
	}
	pkgs := make([]string, 0, len(tests))
	for _, t := range tests {
		pkgs = append(pkgs, "./validation/"+t)
	}
	args := append([]string{"build", "-trimpath", "-o", filepath.Join(out, "tests") + "/"}, pkgs...)
	if _, err := runGo(gobin, src, env, args...); err != nil {
		return nil, err
	}
	for _, t := range tests {
		if _, err := os.Stat(filepath.Join(out, "tests", t)); err != nil {
			return nil, fmt.Errorf("test %s was not built: %w", t, err)
		}
	}
	if err := copyFile(filepath.Join(src, rootfsName()), filepath.Join(out, rootfsName()), 0o644); err != nil {
		return nil, err
	}
	s := &Suite{Module: mi.Path, Version: mi.Version, Sum: mi.Sum, Dir: dir, ModMode: modMode, Tests: tests}
	meta, _ := json.MarshalIndent(struct {
		Key string `json:"key"`
		*Suite
	}{key, s}, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "suite.json"), meta, 0o644); err != nil {
		return nil, err
	}
	// Swap the finished build in.
	old := dir + ".old"
	_ = os.RemoveAll(old)
	if _, err := os.Stat(dir); err == nil {
		if err := os.Rename(dir, old); err != nil {
			return nil, err
		}
	}
	if err := os.Rename(out, dir); err != nil {
		return nil, err
	}
	_ = os.RemoveAll(old)
	return s, nil
}

func loadCached(dir, key string) (*Suite, error) {
	b, err := os.ReadFile(filepath.Join(dir, "suite.json"))
	if err != nil {
		return nil, err
	}
	var m struct {
		Key string `json:"key"`
		Suite
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m.Key != key {
		return nil, errors.New("stale cache")
	}
	s := m.Suite
	s.Dir = dir
	for _, p := range append([]string{s.runtimetest(), s.rootfs()}, func() []string {
		var ps []string
		for _, t := range s.Tests {
			ps = append(ps, s.testBin(t))
		}
		return ps
	}()...) {
		if _, err := os.Stat(p); err != nil {
			return nil, err
		}
	}
	if len(s.Tests) == 0 {
		return nil, errors.New("no tests")
	}
	return &s, nil
}

// listTests returns the validation programs: validation/<name>/<name>.go.
func listTests(src string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(src, "validation"))
	if err != nil {
		return nil, err
	}
	var tests []string
	for _, e := range ents {
		if !e.IsDir() || e.Name() == "util" {
			continue
		}
		if _, err := os.Stat(filepath.Join(src, "validation", e.Name(), e.Name()+".go")); err == nil {
			tests = append(tests, e.Name())
		}
	}
	sort.Strings(tests)
	if len(tests) == 0 {
		return nil, errors.New("no validation tests found")
	}
	return tests, nil
}

// vendorComplete reports whether vendor/ holds more than modules.txt.
func vendorComplete(src string) bool {
	ents, err := os.ReadDir(filepath.Join(src, "vendor"))
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.IsDir() {
			return true
		}
	}
	return false
}

func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("%s is dynamically linked", path)
		}
	}
	return nil
}

func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, dst)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyFile(p, dst, info.Mode().Perm()|0o200)
		}
		return nil
	})
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
