//go:build linux

package xdp

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/xhttpd/xhttpd/internal/enum"
	"github.com/xhttpd/xhttpd/syncookie"
)

// Sizes of the program's maps (MAX_PORTS, MAX_ADDRS and MAX_QUEUES in
// steer.c; a test checks that they agree).
const (
	MaxPorts  = 64  // served TCP ports
	MaxAddrs  = 256 // served addresses per family
	MaxQueues = 64  // rx queues that can have a socket (XSKMAP entries)
	// DefaultFlows is the flow table's size (Strays.Flows) unless told:
	// the connections, and the handshakes under way, that the program
	// tells from strays before the table evicts idle ones. About 100
	// bytes of kernel memory each, 13 MB in all, allocated at load.
	DefaultFlows = 131072
	// MinFlows is the smallest flow table Strays.Flows may ask for.
	MinFlows = 1024
)

// Mode is the XDP attach mode.
type Mode int

const (
	// ModeAuto attaches in native mode and falls back to generic mode when
	// the driver refuses.
	ModeAuto Mode = iota
	// ModeNative runs the program in the driver, before any skb exists.
	ModeNative
	// ModeGeneric runs the program in the core network stack after the skb
	// is built: any driver, but most of the cost XDP saves is paid anyway.
	ModeGeneric
)

var modeNames = []string{ModeAuto: "auto", ModeNative: "native", ModeGeneric: "generic"}

// ParseMode parses "auto", "native" or "generic".
func ParseMode(s string) (Mode, error) { return enum.Parse[Mode](modeNames, s, "XDP mode") }

func (m Mode) String() string { return enum.Name(modeNames, m, "Mode") }

// MarshalText makes Mode usable with flag.TextVar and encoders.
func (m Mode) MarshalText() ([]byte, error) { return enum.Marshal(modeNames, m, "XDP mode") }

// UnmarshalText is ParseMode for flag.TextVar and decoders.
func (m *Mode) UnmarshalText(b []byte) error { return enum.Unmarshal(modeNames, b, "XDP mode", m) }

// Config says what the program steers to AF_XDP sockets: TCP segments whose
// destination is one of Addrs and one of Ports. Both must be non-empty.
type Config struct {
	Ports []uint16
	Addrs []netip.Addr // IPv4 and IPv6; IPv4-mapped IPv6 counts as IPv4, zones are ignored
	Mode  Mode
	// Sockets are AF_XDP socket fds by queue (index = queue), each bound to
	// its queue. Attach registers them before it attaches the program, so
	// that no served segment reaches the kernel, which would reset it,
	// while the sockets are being registered.
	Sockets []int
	// SYNCookies, when set, has the program answer served SYNs beyond a
	// budget itself, with SYN cookies (see SYNCookies).
	SYNCookies *SYNCookies
	// Strays, when set, has the program drop served segments of flows it
	// has not seen start beyond a budget (see Strays).
	Strays *Strays
}

// Strays is how the program treats a served segment that is not a bare
// SYN and whose flow is not in its flow table, a stray: an ACK flood's
// forged segments, or a segment of a connection the table has evicted. The
// table (Flows of them, least recently used out) holds the flows of the SYNs the
// program steered, of the ACKs that completed its SYN cookie handshakes,
// and those AddFlows put there. Each CPU steers at most Budget strays per
// Window to the netstack, which answers or drops them, and drops the rest.
// A stray steered does not enter the table: a flood that repeats its
// four-tuples would make them flows. An evicted connection's segments are
// strays until AddFlows puts it back (package xdpnet does so once a second
// while strays are dropped). With SYN cookies off, every SYN enters the
// table, and a SYN flood turns it over at the flood's rate. A table smaller
// than the connections at once makes some of them strays all the time,
// flood or not: size it for the connections, with room for handshakes.
type Strays struct {
	Budget uint32        // strays per CPU per Window to the netstack
	Window time.Duration // length of a budget window; more than 0
	Flows  int           // the flow table's size; 0: DefaultFlows, else at least MinFlows
}

// SYNCookies is how the program answers a SYN flood. Each CPU passes at most
// Budget served SYNs per Window to the netstack, which answers them with
// every TCP option, and none in a window that follows one over the budget
// (a flood gets no fresh share each window) or while another CPU is over
// it (nor on each CPU it moves to); the program answers the rest
// itself with a SYN-ACK
// carrying a cookie made with Key, sent back out of the interface
// (XDP_TX). To a SYN with timestamps the SYN-ACK offers window scale
// WndScale and SACK (when SACK is set) as the SYN asks, and keeps the
// SYN's choices in the low bits of its TSval for the ACK to echo, as
// Linux's cookies do (gVisor patch 0032); to one without, only its MSS.
// While over the budget it also drops served RSTs without ACK, which a
// flooder's host sends in answer to those SYN-ACKs.
// The netstack's listener, given the same Key, accepts the ACK that
// completes such a handshake (package stack).
type SYNCookies struct {
	Key    syncookie.Key
	Budget uint32        // SYNs per CPU per Window to the netstack; 0 answers every SYN with a cookie
	Window time.Duration // length of a budget window; more than 0
	MSS4   uint16        // the MSS the SYN-ACK announces over IPv4
	MSS6   uint16        // and over IPv6
	RcvWnd uint16        // the receive window the SYN-ACK announces
	// WndScale is the window scale the netstack's listeners offer
	// (stack.CookieWndScale): the connection the ACK opens scales its
	// receive window by it. At most 14.
	WndScale uint8
	SACK     bool // offer SACK, as the netstack does when it has SACK on
}

func (c *SYNCookies) check() error {
	if c.Window <= 0 {
		return fmt.Errorf("xdp: SYN cookie budget window %v is not positive", c.Window)
	}
	if c.MSS4 < 536 || c.MSS6 < 1220 {
		return fmt.Errorf("xdp: SYN cookie MSS %d (IPv4), %d (IPv6) below the minimum 536, 1220", c.MSS4, c.MSS6)
	}
	if c.WndScale > 14 {
		return fmt.Errorf("xdp: SYN cookie window scale %d above 14", c.WndScale)
	}
	if c.RcvWnd == 0 {
		return errors.New("xdp: SYN cookie receive window is 0")
	}
	return nil
}

// Counters are the program's verdicts, summed over CPUs, since it was loaded.
//
// Passed = NotIP + Unparsable + NotTCP + NotServed + NoSocket, and
// Steered = Redirected + NoSocket.
type Counters struct {
	// Passed counts every frame given to the kernel (XDP_PASS).
	Passed uint64
	// Steered counts served frames, for which a redirect was attempted.
	Steered uint64
	// Redirected counts served frames for whose queue a socket was
	// registered. The socket can still drop them (rx ring or fill ring
	// empty); its XDP statistics count those.
	Redirected uint64
	// NoSocket counts served frames passed to the kernel because no socket
	// was registered for their queue.
	NoSocket uint64

	NotIP      uint64 // ethertype not IPv4 or IPv6: ARP, VLAN-tagged, ...
	Unparsable uint64 // truncated, IPv4 options or fragments, IPv6 extension headers
	NotTCP     uint64 // ICMP, ICMPv6, UDP, ...
	NotServed  uint64 // TCP to an address or port that is not served

	// SYNCookies counts served SYNs beyond the budget that the program
	// answered with a cookie (XDP_TX); they are in no other counter.
	SYNCookies uint64
	// FloodRSTs counts served RSTs without ACK dropped while over the SYN
	// budget: what a flooder's host answers to cookie SYN-ACKs. They are in
	// no other counter.
	FloodRSTs uint64
	// Strays counts served segments of flows not in the flow table,
	// dropped beyond the stray budget (Strays). They are in no other
	// counter.
	Strays uint64
}

// Steering is the loaded program and its maps, attached to one interface
// (or, from tests, not attached at all).
type Steering struct {
	objs     steerObjects
	ifindex  int
	mode     Mode
	fallback error
	flows    bool // a flow table (Config.Strays)

	// mu keeps Close from closing the maps under a map operation: they
	// take it for reading, Close for writing.
	mu     sync.RWMutex
	link   link.Link
	closed bool
}

// Attach loads the program, fills its maps from cfg and attaches it to the
// interface with a bpf_link, so that it detaches when the link is closed or
// the process dies. ModeAuto tries native mode first and falls back to
// generic mode; Mode says which one is in use, Fallback why.
//
// The interface index is resolved in the calling thread's network namespace.
func Attach(ifindex int, cfg Config) (*Steering, error) {
	if ifindex <= 0 {
		return nil, fmt.Errorf("xdp: attach: invalid ifindex %d", ifindex)
	}
	var flags []link.XDPAttachFlags
	var modes []Mode
	switch cfg.Mode {
	case ModeAuto:
		flags = []link.XDPAttachFlags{link.XDPDriverMode, link.XDPGenericMode}
		modes = []Mode{ModeNative, ModeGeneric}
	case ModeNative:
		flags = []link.XDPAttachFlags{link.XDPDriverMode}
		modes = []Mode{ModeNative}
	case ModeGeneric:
		flags = []link.XDPAttachFlags{link.XDPGenericMode}
		modes = []Mode{ModeGeneric}
	default:
		return nil, fmt.Errorf("xdp: attach to ifindex %d: invalid mode %d", ifindex, int(cfg.Mode))
	}

	s, err := load(cfg)
	if err != nil {
		return nil, err
	}
	s.ifindex = ifindex
	for q, fd := range cfg.Sockets {
		if err := s.Register(q, fd); err != nil {
			s.objs.Close()
			return nil, err
		}
	}

	var errs []error
	for i, f := range flags {
		l, err := link.AttachXDP(link.XDPOptions{
			Program:   s.objs.XhttpdSteer,
			Interface: ifindex,
			Flags:     f,
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.link = l
		s.mode = modes[i]
		if len(errs) > 0 {
			s.fallback = fmt.Errorf("xdp: attach to ifindex %d in %s mode: %w", ifindex, modes[0], errs[0])
		}
		return s, nil
	}
	s.objs.Close()
	if len(errs) == 2 {
		return nil, fmt.Errorf("xdp: attach to ifindex %d in %s mode: %w; in %s mode: %w", ifindex, modes[0], errs[0], modes[1], errs[1])
	}
	return nil, fmt.Errorf("xdp: attach to ifindex %d in %s mode: %w", ifindex, modes[0], errs[0])
}

// load loads the program and fills its maps without attaching it; the
// returned Steering has Mode ModeAuto and no link. Tests run the program
// from here through BPF_PROG_TEST_RUN.
func load(cfg Config) (*Steering, error) {
	ports, v4, v6, err := cfg.keys()
	if err != nil {
		return nil, err
	}
	if cfg.SYNCookies != nil {
		if err := cfg.SYNCookies.check(); err != nil {
			return nil, err
		}
	}
	if c := cfg.Strays; c != nil {
		if c.Window <= 0 {
			return nil, fmt.Errorf("xdp: stray budget window %v is not positive", c.Window)
		}
		if c.Flows != 0 && (c.Flows < MinFlows || c.Flows > math.MaxUint32) {
			return nil, fmt.Errorf("xdp: flow table of %d flows: want at least %d", c.Flows, MinFlows)
		}
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; newer ones
	// (memcg accounting) make this a no-op.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("xdp: remove memlock limit: %w", err)
	}
	spec, err := loadSteer()
	if err != nil {
		return nil, fmt.Errorf("xdp: load steering program: %w", err)
	}
	flows := 1 // no table: no memory for one
	if cfg.Strays != nil {
		flows = cmp.Or(cfg.Strays.Flows, DefaultFlows)
	}
	spec.Maps[steerMapFlows].MaxEntries = uint32(flows)
	s := &Steering{flows: cfg.Strays != nil}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("xdp: load steering program: %+v", verr)
		}
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("xdp: load steering program (needs root, or CAP_BPF and CAP_NET_ADMIN): %w", err)
		}
		return nil, fmt.Errorf("xdp: load steering program: %w", err)
	}
	one := uint8(1)
	for _, p := range ports {
		if err := s.objs.ServedPorts.Update(p, one, ebpf.UpdateAny); err != nil {
			s.objs.Close()
			return nil, fmt.Errorf("xdp: add served port %d: %w", p, err)
		}
	}
	for _, a := range v4 {
		if err := s.objs.ServedV4.Update(a.As4(), one, ebpf.UpdateAny); err != nil {
			s.objs.Close()
			return nil, fmt.Errorf("xdp: add served address %s: %w", a, err)
		}
	}
	for _, a := range v6 {
		if err := s.objs.ServedV6.Update(a.As16(), one, ebpf.UpdateAny); err != nil {
			s.objs.Close()
			return nil, fmt.Errorf("xdp: add served address %s: %w", a, err)
		}
	}
	if c := cfg.SYNCookies; c != nil {
		v := steerSyncookieConfig{
			Key:      c.Key,
			WindowNs: uint64(c.Window),
			Budget:   c.Budget,
			Enabled:  1,
			Mss4:     c.MSS4,
			Mss6:     c.MSS6,
			Window:   c.RcvWnd,
			Wscale:   c.WndScale,
		}
		if c.SACK {
			v.Sack = 1
		}
		if err := s.objs.SyncookieCfg.Update(uint32(0), &v, ebpf.UpdateAny); err != nil {
			s.objs.Close()
			return nil, fmt.Errorf("xdp: set SYN cookie configuration: %w", err)
		}
	}
	if c := cfg.Strays; c != nil {
		v := steerStrayConfig{WindowNs: uint64(c.Window), Budget: c.Budget, Enabled: 1}
		if err := s.objs.StrayCfg.Update(uint32(0), &v, ebpf.UpdateAny); err != nil {
			s.objs.Close()
			return nil, fmt.Errorf("xdp: set stray configuration: %w", err)
		}
	}
	return s, nil
}

// keys validates cfg and returns its ports and addresses, deduplicated and
// split by family.
func (cfg Config) keys() (ports []uint16, v4, v6 []netip.Addr, err error) {
	if len(cfg.Ports) == 0 {
		return nil, nil, nil, errors.New("xdp: no ports to serve")
	}
	if len(cfg.Addrs) == 0 {
		return nil, nil, nil, errors.New("xdp: no addresses to serve")
	}
	for _, p := range cfg.Ports {
		if p == 0 {
			return nil, nil, nil, errors.New("xdp: port 0 cannot be served")
		}
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	for _, a := range cfg.Addrs {
		if !a.IsValid() {
			return nil, nil, nil, errors.New("xdp: invalid (zero) address")
		}
		a = a.Unmap().WithZone("")
		if a.IsUnspecified() {
			// Serving "any address" would steer traffic for every
			// address the host has; say which ones instead.
			return nil, nil, nil, fmt.Errorf("xdp: unspecified address %s cannot be served; list the addresses", a)
		}
		if a.Is4() {
			if !slices.Contains(v4, a) {
				v4 = append(v4, a)
			}
		} else if !slices.Contains(v6, a) {
			v6 = append(v6, a)
		}
	}
	if len(ports) > MaxPorts {
		return nil, nil, nil, fmt.Errorf("xdp: %d ports, at most %d can be served", len(ports), MaxPorts)
	}
	if len(v4) > MaxAddrs || len(v6) > MaxAddrs {
		return nil, nil, nil, fmt.Errorf("xdp: %d IPv4 and %d IPv6 addresses, at most %d per family can be served", len(v4), len(v6), MaxAddrs)
	}
	return ports, v4, v6, nil
}

// Mode is the mode the program is attached in: ModeNative or ModeGeneric
// (ModeAuto only for a program loaded but not attached).
func (s *Steering) Mode() Mode { return s.mode }

// Fallback is, when Attach was asked for ModeAuto and had to use generic
// mode, the error native mode failed with; nil otherwise.
func (s *Steering) Fallback() error { return s.fallback }

// Register makes the AF_XDP socket xskFD the destination of served frames
// arriving on rx queue queue, replacing any socket registered before. The
// map holds its own reference to the socket: the caller may close xskFD
// after Unregister or Close. The socket must be bound, with an rx ring, to
// this interface and queue (the kernel refuses unbound ones; frames on a
// socket bound elsewhere are dropped).
func (s *Steering) Register(queue int, xskFD int) error {
	if queue < 0 || queue >= MaxQueues {
		return fmt.Errorf("xdp: register queue %d: queue out of range [0, %d)", queue, MaxQueues)
	}
	if xskFD < 0 {
		return fmt.Errorf("xdp: register queue %d: invalid fd %d", queue, xskFD)
	}
	err := s.use(func() error {
		return s.objs.Xsks.Update(uint32(queue), uint32(xskFD), ebpf.UpdateAny)
	})
	if err != nil {
		return fmt.Errorf("xdp: register queue %d (fd %d): %w", queue, xskFD, err)
	}
	return nil
}

// Unregister removes the socket of queue, if any: its served frames go to
// the kernel again.
func (s *Steering) Unregister(queue int) error {
	if queue < 0 || queue >= MaxQueues {
		return fmt.Errorf("xdp: unregister queue %d: queue out of range [0, %d)", queue, MaxQueues)
	}
	err := s.use(func() error {
		return s.objs.Xsks.Delete(uint32(queue))
	})
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("xdp: unregister queue %d: %w", queue, err)
	}
	return nil
}

// Counters reads the verdict counters, summed over CPUs. The per-CPU values
// are read one after another, not as a snapshot.
func (s *Steering) Counters() (Counters, error) {
	var c Counters
	var n [steerCounterCOUNTER_MAX]uint64
	err := s.use(func() error {
		var perCPU []uint64
		for i := range n {
			if err := s.objs.Counters.Lookup(uint32(i), &perCPU); err != nil {
				return fmt.Errorf("counter %d: %w", i, err)
			}
			for _, v := range perCPU {
				n[i] += v
			}
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("xdp: read counters: %w", err)
	}
	c.NotIP = n[steerCounterCOUNTER_NOT_IP]
	c.Unparsable = n[steerCounterCOUNTER_UNPARSABLE]
	c.NotTCP = n[steerCounterCOUNTER_NOT_TCP]
	c.NotServed = n[steerCounterCOUNTER_NOT_SERVED]
	c.Redirected = n[steerCounterCOUNTER_REDIRECTED]
	c.NoSocket = n[steerCounterCOUNTER_NO_SOCKET]
	c.SYNCookies = n[steerCounterCOUNTER_SYN_COOKIE]
	c.FloodRSTs = n[steerCounterCOUNTER_FLOOD_RST]
	c.Strays = n[steerCounterCOUNTER_STRAY]
	c.Steered = c.Redirected + c.NoSocket
	c.Passed = c.NotIP + c.Unparsable + c.NotTCP + c.NotServed + c.NoSocket
	return c, nil
}

// A Flow is a TCP connection seen from the server: Local is the served
// address and port.
type Flow struct{ Local, Remote netip.AddrPort }

// key is f as the flow table keys it: addresses IPv4-mapped, everything
// in network byte order.
func (f Flow) key() steerFlow {
	be32 := func(a netip.Addr) (w [4]uint32) {
		b := a.As16()
		for i := range w {
			w[i] = binary.NativeEndian.Uint32(b[4*i:])
		}
		return w
	}
	be16 := func(p uint16) uint16 { return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, p)) }
	return steerFlow{Remote: be32(f.Remote.Addr()), Local: be32(f.Local.Addr()), RemotePort: be16(f.Remote.Port()), LocalPort: be16(f.Local.Port())}
}

// AddFlows puts flows in the flow table (Strays), as the program does with
// a flow it sees start, in one system call. It fails without a table.
func (s *Steering) AddFlows(flows []Flow) error {
	if len(flows) == 0 {
		return nil
	}
	keys := make([]steerFlow, len(flows))
	for i, f := range flows {
		if !f.Local.Addr().IsValid() || !f.Remote.Addr().IsValid() {
			return fmt.Errorf("xdp: add flow %v: invalid address", f)
		}
		keys[i] = f.key()
	}
	values := make([]uint8, len(flows))
	for i := range values {
		values[i] = 1
	}
	err := s.use(func() error {
		if !s.flows {
			return errors.New("no flow table (Strays not set)")
		}
		_, err := s.objs.Flows.BatchUpdate(keys, values, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("xdp: add %d flows: %w", len(flows), err)
	}
	return nil
}

// Close detaches the program and releases its maps (and with the XSKMAP,
// its references to the registered sockets). It is safe to call twice.
func (s *Steering) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.link != nil {
		if err := s.link.Close(); err != nil {
			errs = append(errs, fmt.Errorf("xdp: detach from ifindex %d: %w", s.ifindex, err))
		}
	}
	if err := s.objs.Close(); err != nil {
		errs = append(errs, fmt.Errorf("xdp: close program and maps: %w", err))
	}
	return errors.Join(errs...)
}

var errClosed = errors.New("steering closed")

// use runs a map operation unless s is closed.
func (s *Steering) use(op func() error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	return op()
}
