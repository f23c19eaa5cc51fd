package fwd

import (
	"bytes"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"

	"github.com/hostnet-dev/hostnet/shim/network/reaped"
)

// commentPrefix starts the comment of every rule Add inserts.
const commentPrefix = "hostnet "

// Chain is what an iptables filter FORWARD chain holds of hostnet's.
type Chain struct {
	Binary string
	Policy string // "ACCEPT", "DROP"
	// Rules are the accept rules of each key found in the chain, each
	// with Binaries naming this chain's command, so that Remove removes
	// them from it.
	Rules []Rules
}

// List reads the FORWARD chain with the binary of one flavour (`iptables
// -S FORWARD`).
func List(bin string) (Chain, error) {
	var out bytes.Buffer
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-w", "-t", "filter", "-S", "FORWARD")
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := reaped.Run(cmd); err != nil {
		return Chain{}, fmt.Errorf("%s -t filter -S FORWARD: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	ch := ParseChain(out.String())
	ch.Binary = bin
	for i := range ch.Rules {
		ch.Rules[i].Binaries = []string{bin}
	}
	return ch, nil
}

// ParseChain reads `iptables -S FORWARD`: the policy and the rules Add
// inserted, by key (the comment "hostnet <key>"), in order of first
// appearance. Other rules are not hostnet's and are left out.
func ParseChain(text string) Chain {
	var ch Chain
	byKey := map[string]int{}
	for _, line := range strings.Split(text, "\n") {
		args := splitArgs(line)
		if len(args) == 3 && args[0] == "-P" && args[1] == "FORWARD" {
			ch.Policy = args[2]
			continue
		}
		if len(args) < 2 || args[0] != "-A" || args[1] != "FORWARD" {
			continue
		}
		var r Rules
		for i := 2; i+1 < len(args); i++ {
			switch v := args[i+1]; args[i] {
			case "--comment":
				if key, ok := strings.CutPrefix(v, commentPrefix); ok {
					r.Key = key
				}
			case "-s", "-d":
				if p, err := netip.ParsePrefix(v); err == nil && p.IsSingleIP() {
					r.Addr = p.Addr()
				}
			case "-i", "-o":
				r.Bridge = v
			}
		}
		if r.Key == "" || !r.Addr.IsValid() || r.Bridge == "" {
			continue
		}
		if i, ok := byKey[r.Key]; ok {
			if ch.Rules[i].Addr == r.Addr && ch.Rules[i].Bridge == r.Bridge {
				continue
			}
		}
		byKey[r.Key] = len(ch.Rules)
		ch.Rules = append(ch.Rules, r)
	}
	return ch
}

// splitArgs splits a line of `iptables -S`, whose comments are quoted
// when they hold spaces ("hostnet ns/id@abcd1234").
func splitArgs(line string) []string {
	var args []string
	var cur strings.Builder
	inQuote, escaped, have := false, false, false
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && inQuote:
			escaped = true
		case r == '"':
			inQuote, have = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if have {
				args = append(args, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		args = append(args, cur.String())
	}
	return args
}
