package testbed

import "github.com/cilium/ebpf"

// What the tests of package testbed_test see of the package's insides. They
// are external tests so that they can use package testbedtest, which
// imports this one.

const NetnsDir = netnsDir

var (
	DelNS    = delNS
	NsName   = nsName
	NsExists = nsExists
	PidAlive = pidAlive
	SweepRE  = sweepRE
	NewLoss  = newLoss
	HandleIn = handleIn
)

// SetTestHookSetup sets the hook that runs at the end of New's setup, nil
// for none.
func SetTestHookSetup(f func(*Testbed) error) { testHookSetup = f }

// LossProgram is one of a Loss's programs with the verdicts it returns to
// pass and to drop a frame.
type LossProgram struct {
	*ebpf.Program
	Pass, Drop uint32
}

// Programs are l's programs: the receive side's XDP, then the send side's
// tcx.
func (l *Loss) Programs() []LossProgram {
	var ps []LossProgram
	for i, p := range l.progs {
		c := []ctxLayout{xdpCtx, tcCtx}[i]
		ps = append(ps, LossProgram{p, uint32(c.pass), uint32(c.drop)})
	}
	return ps
}
