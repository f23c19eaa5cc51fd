package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

func namespacesCtx(ctx context.Context, ns string) context.Context {
	return namespaces.WithNamespace(ctx, ns)
}

// netEnv is the bench's own networks: a hostnet bridge and a CNI bridge,
// each with a name and subnet unique to this run.
type netEnv struct {
	hostnetConfig string // TOML for --runtime-config-path
	hostnetBridge string
	cniConfDir    string
	cniBridge     string
	cniNet        string
	chainsBefore  map[string]bool // "table/chain" of iptables before the run
	nftBefore     string
}

const cniScript = `mount -t tmpfs -o size=1m,mode=755 hostnet-bench /opt && mkdir -p /opt/cni/bin &&
mount --bind /usr/lib/cni /opt/cni/bin && mount --bind "$1" /etc/cni/net.d && shift && exec "$@"`

func (b *bench) setupNet() (*netEnv, error) {
	pid := os.Getpid()
	n := &netEnv{
		hostnetBridge: fmt.Sprintf("hnbh%d", pid%1000000),
		cniBridge:     fmt.Sprintf("hnbc%d", pid%1000000),
		cniNet:        fmt.Sprintf("hostnet-bench-%d", pid),
		cniConfDir:    filepath.Join(b.work, "cni-conf"),
		hostnetConfig: filepath.Join(b.work, "hostnet.toml"),
		chainsBefore:  iptablesChains(),
		nftBefore:     nftTables(),
	}
	b.onCleanup(func() error { return b.cleanupNet(n) })
	toml := fmt.Sprintf("[network.bridge]\nname = %q\nsubnet = %q\nstate_dir = %q\n",
		n.hostnetBridge, fmt.Sprintf("10.238.%d.0/24", pid%250), filepath.Join(b.work, "hostnet-ipam"))
	if err := os.WriteFile(n.hostnetConfig, []byte(toml), 0o644); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(n.cniConfDir, 0o755); err != nil {
		return nil, err
	}
	conf := map[string]any{
		"cniVersion": "1.0.0",
		"name":       n.cniNet,
		"plugins": []any{
			map[string]any{"type": "bridge", "bridge": n.cniBridge, "isGateway": true, "ipMasq": true,
				"ipam": map[string]any{"type": "host-local", "dataDir": filepath.Join(b.work, "cni-ipam"),
					"ranges": [][]map[string]string{{{"subnet": fmt.Sprintf("10.239.%d.0/24", pid%250)}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}}}},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
			map[string]any{"type": "firewall", "backend": "iptables"},
		},
	}
	data, _ := json.MarshalIndent(conf, "", "  ")
	return n, os.WriteFile(filepath.Join(n.cniConfDir, "10-hostnet-bench.conflist"), data, 0o644)
}

// ctr runs ctr like d.Ctr, but in a private mount namespace in which the
// bench's conflist is /etc/cni/net.d and Debian's plugins are /opt/cni/bin
// (where `ctr --cni` looks). Every ctr of the network section goes through
// it, so its cost is the same for all contenders.
func (b *bench) netCtr(ctx context.Context, args ...string) *exec.Cmd {
	cmd := b.d.Ctr(ctx, args...)
	unshare, _ := exec.LookPath("unshare")
	cmd.Args = append([]string{unshare, "--mount", "--propagation", "private", "/bin/sh", "-c", cniScript, "sh", b.net.cniConfDir}, cmd.Args...)
	cmd.Path = unshare
	return cmd
}

func (b *bench) netCtrRun(ctx context.Context, args ...string) error {
	cmd := b.netCtr(ctx, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// netMode is one network contender.
type netMode struct {
	name string
	args []string // ctr run flags
}

func (b *bench) netModes() []netMode {
	hn := []string{"--runtime", daemon.HostnetRuntime, "--runtime-config-path", b.net.hostnetConfig}
	rc := []string{"--runtime", daemon.RuncRuntime, "--runc-binary", b.o.runc}
	return []netMode{
		{"hostnet host mode", hn},
		{"hostnet bridge mode", append(slices.Clone(hn), "--annotation", "hostnet.containerd.io/network=bridge")},
		{"runc 1.5.2 --net-host", append(slices.Clone(rc), "--net-host")},
		{"runc 1.5.2 + CNI bridge", append(slices.Clone(rc), "--cni")},
	}
}

func (b *bench) network(ctx context.Context) []*Table {
	n, err := b.setupNet()
	if err != nil {
		return []*Table{{ID: "network", Title: "network", Note: "setup: " + err.Error()}}
	}
	b.net = n
	modes := b.netModes()

	// 4a: attach + detach.
	var cs []*contender
	for _, m := range modes {
		cs = append(cs, &contender{name: m.name, run: func(ctx context.Context) error {
			args := append([]string{"run", "--rm", "--fifo-dir", b.d.FIFODir}, m.args...)
			return b.netCtrRun(ctx, append(args, image.DefaultName, nextID("net"), "true")...)
		}})
	}
	interleave(ctx, b.o.n, 2, cs)
	life := timeTable("net-run", "Network: `ctr run --rm busybox id true` per network mode",
		"All four run through the same `unshare -m` wrapper (which puts the bench's conflist where `ctr --cni` looks). CNI = bridge + host-local + portmap + firewall (Debian plugins 1.1.1), run by ctr between task create and start.", "runc 1.5.2 + CNI bridge", cs)
	cost := &Table{ID: "net-attach", Title: "Network: attach + detach cost (bridge run minus host-network run, same runtime)",
		Note:   "hostnet: bridge mode − host mode; CNI: runc+CNI − runc --net-host. Means and medians of the interleaved runs above.",
		Anchor: "CNI bridge (runc 1.5.2)", RatioOf: "mean", Cols: []Col{{"mean", "mean", "ms"}, {"median", "median", "ms"}}}
	diff := func(name string, a, base *contender) {
		r := Row{Name: name}
		switch {
		case a.err != nil:
			r.Err = a.err.Error()
		case base.err != nil:
			r.Err = base.err.Error()
		default:
			sa, sb := summarize(a.samples), summarize(base.samples)
			r.V = map[string]float64{"mean": sa.Mean - sb.Mean, "median": sa.Median - sb.Median}
		}
		cost.Rows = append(cost.Rows, r)
	}
	diff("hostnet bridge", cs[1], cs[0])
	diff("CNI bridge (runc 1.5.2)", cs[3], cs[2])
	tables := []*Table{life, cost}
	if ctx.Err() != nil {
		return tables
	}
	return append(tables, b.netTraffic(ctx, modes)...)
}

// svc is a running container (or the bare host) to send traffic to.
type svc struct {
	name string
	id   string // container id, "" for the bare host
	pid  int
	ip   string
	cmd  *exec.Cmd
	err  error
}

// startSleeper runs `ctr run --rm ... sleep 600` in the background and
// waits until its task runs.
func (b *bench) startSleeper(ctx context.Context, c *client.Client, m netMode) *svc {
	s := &svc{name: m.name, id: nextID("srv")}
	args := append([]string{"run", "--rm", "--fifo-dir", b.d.FIFODir}, m.args...)
	s.cmd = b.netCtr(context.WithoutCancel(ctx), append(args, image.DefaultName, s.id, "sleep", "600")...)
	var out bytes.Buffer
	s.cmd.Stdout, s.cmd.Stderr = &out, &out
	if s.err = s.cmd.Start(); s.err != nil {
		return s
	}
	b.onCleanup(func() error { b.stopSleeper(s); return nil })
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if ctr, err := c.LoadContainer(ctx, s.id); err == nil {
			if task, err := ctr.Task(ctx, nil); err == nil {
				if st, err := task.Status(ctx); err == nil && st.Status == client.Running {
					s.pid = int(task.Pid())
					break
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s.pid == 0 {
		s.err = fmt.Errorf("%s did not start: %s", s.id, out.String())
		return s
	}
	if strings.Contains(m.name, "bridge") {
		out, err := exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", s.pid), "ip", "-4", "-o", "addr", "show", "dev", "eth0").Output()
		if err != nil {
			s.err = fmt.Errorf("eth0 of %s: %w", s.id, err)
			return s
		}
		f := strings.Fields(string(out))
		if len(f) < 4 {
			s.err = fmt.Errorf("eth0 of %s: %q", s.id, out)
			return s
		}
		s.ip, _, _ = strings.Cut(f[3], "/")
	} else {
		s.ip = "127.0.0.1"
	}
	return s
}

func (b *bench) stopSleeper(s *svc) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	if s.cmd.ProcessState == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		b.netCtrRun(ctx, "tasks", "kill", "--signal", "SIGKILL", s.id)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	}
}

// 4b/4c: iperf3 throughput and request latency.
func (b *bench) netTraffic(ctx context.Context, modes []netMode) []*Table {
	c, err := b.d.Client()
	if err != nil {
		return nil
	}
	defer c.Close()
	ctx = namespacesCtx(ctx, b.d.Namespace)
	svcs := []*svc{{name: "bare host (loopback)", ip: "127.0.0.1"}}
	for _, m := range []netMode{modes[0], modes[1], modes[3]} {
		s := b.startSleeper(ctx, c, m)
		defer b.stopSleeper(s)
		svcs = append(svcs, s)
	}
	// Throughput, interleaved.
	tput := &Table{ID: "iperf3", Title: "Network: TCP throughput, iperf3 client on the host → server in the container's network namespace",
		Note:   fmt.Sprintf("%d runs × %d s each, interleaved; server `nsenter --net=/proc/<container pid>/ns/net iperf3 -s -1`; host/bare to 127.0.0.1, bridges to the container's eth0 address.", b.o.iperfRuns, b.o.iperfSecs),
		Anchor: "bare host (loopback)", RatioOf: "mean", HigherIsBetter: true,
		Cols: []Col{{"mean", "mean", "Gbit/s"}, {"min", "min", "Gbit/s"}, {"max", "max", "Gbit/s"}}}
	gbps := make([][]float64, len(svcs))
	errs := make([]error, len(svcs))
	for i := range b.o.iperfRuns {
		for k := range svcs {
			j := (i + k) % len(svcs)
			s := svcs[j]
			if s.err != nil || errs[j] != nil || ctx.Err() != nil {
				continue
			}
			v, err := b.iperf(ctx, s)
			if err != nil {
				errs[j] = err
				continue
			}
			gbps[j] = append(gbps[j], v)
		}
	}
	for j, s := range svcs {
		r := Row{Name: s.name, Samples: gbps[j]}
		if err := cmp.Or(s.err, errs[j]); err != nil {
			r.Err = err.Error()
		} else if len(gbps[j]) > 0 {
			st := summarize(gbps[j])
			r.V = map[string]float64{"mean": st.Mean, "min": st.Min, "max": st.Max}
		}
		tput.Rows = append(tput.Rows, r)
	}
	// Latency: the echo server is busybox `nc -l -e cat` exec'd in the container.
	lat := &Table{ID: "latency", Title: fmt.Sprintf("Network: request latency, %d × 64-byte echo round trips on one TCP connection", b.o.requests),
		Note:   "Go client on the host; server `nc -l -p PORT -e cat` (busybox) exec'd into the container with `ctr tasks exec`, on the bare host run directly. Per contender: " + fmt.Sprint(b.o.n/10+1) + " connections interleaved.",
		Anchor: "bare host (loopback)", RatioOf: "p50",
		Cols: []Col{{"p50", "p50", "µs"}, {"p90", "p90", "µs"}, {"p99", "p99", "µs"}, {"mean", "mean", "µs"}}}
	lats := make([][]float64, len(svcs))
	lerrs := make([]error, len(svcs))
	for i := range b.o.n/10 + 1 {
		for k := range svcs {
			j := (i + k) % len(svcs)
			s := svcs[j]
			if s.err != nil || lerrs[j] != nil || ctx.Err() != nil {
				continue
			}
			v, err := b.echo(ctx, s)
			if err != nil {
				lerrs[j] = err
				continue
			}
			lats[j] = append(lats[j], v...)
		}
	}
	for j, s := range svcs {
		r := Row{Name: s.name}
		if err := cmp.Or(s.err, lerrs[j]); err != nil {
			r.Err = err.Error()
		} else if len(lats[j]) > 0 {
			sorted := slices.Clone(lats[j])
			slices.Sort(sorted)
			st := summarize(sorted)
			r.V = map[string]float64{"p50": percentile(sorted, 50), "p90": percentile(sorted, 90), "p99": percentile(sorted, 99), "mean": st.Mean}
		}
		lat.Rows = append(lat.Rows, r)
	}
	return []*Table{tput, lat}
}

// freePort finds a TCP port free on the host's loopback.
func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 39000
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// iperf runs one iperf3 test against a one-off server in s's netns.
func (b *bench) iperf(ctx context.Context, s *svc) (float64, error) {
	port := fmt.Sprint(freePort())
	var srv *exec.Cmd
	if s.pid == 0 {
		srv = exec.Command("iperf3", "-s", "-1", "-B", s.ip, "-p", port)
	} else {
		srv = exec.Command("nsenter", fmt.Sprintf("--net=/proc/%d/ns/net", s.pid), "iperf3", "-s", "-1", "-B", s.ip, "-p", port)
	}
	if err := srv.Start(); err != nil {
		return 0, err
	}
	defer func() {
		srv.Process.Kill() // by pid; a no-op once it has exited
		srv.Wait()
	}()
	var lastErr error
	for range 50 {
		cl := exec.CommandContext(ctx, "iperf3", "-c", s.ip, "-p", port, "-t", fmt.Sprint(b.o.iperfSecs), "-J")
		out, err := cl.Output()
		var r struct {
			Error string `json:"error"`
			End   struct {
				SumReceived struct {
					BitsPerSecond float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		jerr := json.Unmarshal(out, &r)
		if err == nil && jerr == nil && r.Error == "" && r.End.SumReceived.BitsPerSecond > 0 {
			return r.End.SumReceived.BitsPerSecond / 1e9, nil
		}
		lastErr = fmt.Errorf("iperf3 -c %s: %w: %s", s.ip, err, firstLineOf(out))
		if !bytes.Contains(out, []byte("refused")) {
			return 0, lastErr
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0, lastErr
}

func firstLineOf(b []byte) string {
	var m struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &m) == nil && m.Error != "" {
		return m.Error
	}
	l, _, _ := strings.Cut(string(b), "\n")
	return l
}

// echo starts a one-connection echo server in s and times b.o.requests
// 64-byte round trips, in microseconds.
func (b *bench) echo(ctx context.Context, s *svc) ([]float64, error) {
	port := fmt.Sprint(freePort())
	var srv *exec.Cmd
	if s.id == "" {
		cat := filepath.Join(b.work, "cat")
		if _, err := os.Lstat(cat); err != nil {
			os.Symlink(image.DefaultBusybox, cat)
		}
		srv = exec.Command(image.DefaultBusybox, "nc", "-l", "-p", port, "-e", cat)
	} else {
		srv = b.d.Ctr(context.WithoutCancel(ctx), "tasks", "exec", "--exec-id", nextID("echo"), "--fifo-dir", b.d.FIFODir, s.id, "nc", "-l", "-p", port, "-e", "cat")
	}
	var out bytes.Buffer
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		return nil, err
	}
	defer func() {
		done := make(chan struct{})
		go func() { srv.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			srv.Process.Kill()
			<-done
		}
	}()
	var conn net.Conn
	var err error
	for range 200 {
		conn, err = net.DialTimeout("tcp", net.JoinHostPort(s.ip, port), time.Second)
		if err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("echo server in %s: %w: %s", s.name, err, out.String())
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	msg := bytes.Repeat([]byte("x"), 63)
	msg = append(msg, '\n')
	buf := make([]byte, len(msg))
	rd := bufio.NewReader(conn)
	// A round trip first, so the server side has surely started cat.
	lat := make([]float64, 0, b.o.requests)
	for i := range b.o.requests + 10 {
		t0 := time.Now()
		if _, err := conn.Write(msg); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(rd, buf); err != nil {
			return nil, fmt.Errorf("echo read: %w", err)
		}
		if i >= 10 {
			lat = append(lat, float64(time.Since(t0))/float64(time.Microsecond))
		}
	}
	return lat, nil
}

// cleanupNet deletes the bench's bridges, the iptables chains CNI created
// during the run (and the rules jumping to them), tables iptables-nft
// created and left empty, and hostnet nftables rules of our namespace.
func (b *bench) cleanupNet(n *netEnv) error {
	var errs []error
	for _, br := range []string{n.hostnetBridge, n.cniBridge} {
		if exec.Command("ip", "link", "show", "dev", br).Run() == nil {
			if out, err := exec.Command("ip", "link", "del", "dev", br).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("delete bridge %s: %w: %s", br, err, out))
			}
		}
	}
	// Our rules in hostnet's shared table (only left if a shim died).
	if out, err := exec.Command("nft", "-a", "list", "table", "ip", "hostnet").Output(); err == nil {
		chain := ""
		re := regexp.MustCompile(`# handle (\d+)$`)
		for l := range strings.Lines(string(out)) {
			l = strings.TrimSpace(l)
			if c, ok := strings.CutPrefix(l, "chain "); ok {
				chain = strings.Fields(c)[0]
			}
			if strings.Contains(l, `"`+b.d.Namespace+"/") {
				if m := re.FindStringSubmatch(l); m != nil {
					exec.Command("nft", "delete", "rule", "ip", "hostnet", chain, "handle", m[1]).Run()
				}
			}
		}
	}
	// iptables chains created during the run (CNI's).
	for _, cmdName := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			lines := iptablesS(cmdName, table)
			var newChains []string
			for _, l := range lines {
				if c, ok := strings.CutPrefix(l, "-N "); ok && !n.chainsBefore[cmdName+"/"+table+"/"+c] && strings.HasPrefix(c, "CNI-") {
					newChains = append(newChains, c)
				}
			}
			// Rules of older chains that jump to a new one, deleted by
			// number (their comments hold quotes), highest first.
			olds := map[string]bool{}
			for _, l := range lines {
				f := strings.Fields(l)
				if len(f) > 1 && (f[0] == "-P" || f[0] == "-N") && !slices.Contains(newChains, f[1]) {
					olds[f[1]] = true
				}
			}
			for chain := range olds {
				var nums []int
				k := 0
				for _, l := range iptablesChainS(cmdName, table, chain) {
					if !strings.HasPrefix(l, "-A ") {
						continue
					}
					k++
					f := strings.Fields(l)
					for i, x := range f {
						if x == "-j" && i+1 < len(f) && slices.Contains(newChains, f[i+1]) {
							nums = append(nums, k)
						}
					}
				}
				for _, num := range slices.Backward(nums) {
					if out, err := exec.Command(cmdName, "-t", table, "-D", chain, fmt.Sprint(num)).CombinedOutput(); err != nil {
						errs = append(errs, fmt.Errorf("%s -t %s -D %s %d: %w: %s", cmdName, table, chain, num, err, out))
					}
				}
			}
			for _, c := range newChains {
				exec.Command(cmdName, "-t", table, "-F", c).Run()
			}
			for _, c := range newChains {
				if out, err := exec.Command(cmdName, "-t", table, "-X", c).CombinedOutput(); err != nil {
					errs = append(errs, fmt.Errorf("%s -t %s -X %s: %w: %s", cmdName, table, c, err, out))
				}
			}
		}
	}
	// Tables iptables-nft created for CNI, if nothing else is in them now.
	for l := range strings.Lines(nftTables()) {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(n.nftBefore, l+"\n") {
			continue
		}
		f := strings.Fields(l) // table <family> <name>
		if len(f) != 3 || !slices.Contains([]string{"filter", "nat", "mangle"}, f[2]) || (f[1] != "ip" && f[1] != "ip6") {
			continue
		}
		cmdName := map[string]string{"ip": "iptables", "ip6": "ip6tables"}[f[1]]
		empty := true
		for _, r := range iptablesS(cmdName, f[2]) {
			if !strings.HasPrefix(r, "-P ") {
				empty = false
			}
		}
		if empty {
			exec.Command("nft", "delete", "table", f[1], f[2]).Run()
		}
	}
	return errors.Join(errs...)
}

func nftTables() string {
	out, _ := exec.Command("nft", "list", "tables").Output()
	return string(out)
}

func iptablesS(cmdName, table string) []string {
	out, err := exec.Command(cmdName, "-t", table, "-S").Output()
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func iptablesChainS(cmdName, table, chain string) []string {
	out, err := exec.Command(cmdName, "-t", table, "-S", chain).Output()
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

func iptablesChains() map[string]bool {
	m := map[string]bool{}
	for _, cmdName := range []string{"iptables", "ip6tables"} {
		for _, table := range []string{"filter", "nat", "mangle"} {
			for _, l := range iptablesS(cmdName, table) {
				if c, ok := strings.CutPrefix(l, "-N "); ok {
					m[cmdName+"/"+table+"/"+c] = true
				}
			}
		}
	}
	return m
}
