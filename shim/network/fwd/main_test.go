package fwd

import (
	"testing"

	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
)

// As root, the tests run in a network namespace of their own.
func TestMain(m *testing.M) { nstest.Main(m) }
