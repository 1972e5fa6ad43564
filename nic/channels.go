package nic

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// Channels is what ethtool -l reports: how many queues of each kind the
// driver has set up, and the most it could. A combined channel is an rx and
// a tx queue sharing one interrupt; drivers for real NICs mostly have only
// those, veth has rx and tx. xhttpd serves rx queues (RxQueues): rx plus
// combined channels.
type Channels struct {
	MaxRx       uint32 `json:"max_rx"`
	MaxTx       uint32 `json:"max_tx"`
	MaxOther    uint32 `json:"max_other"`
	MaxCombined uint32 `json:"max_combined"`
	Rx          uint32 `json:"rx"`
	Tx          uint32 `json:"tx"`
	Other       uint32 `json:"other"`
	Combined    uint32 `json:"combined"`
}

// sizeofChannels is struct ethtool_channels: the command and eight counts.
const sizeofChannels = 9 * 4

// ReadChannels reads the interface's channels (ETHTOOL_GCHANNELS). A driver
// without channels (lo) answers EOPNOTSUPP.
func ReadChannels(ifname string) (Channels, error) {
	buf := make([]byte, sizeofChannels)
	binary.NativeEndian.PutUint32(buf, unix.ETHTOOL_GCHANNELS)
	if err := ethtool(ifname, buf); err != nil {
		return Channels{}, fmt.Errorf("nic: %s: ethtool channels: %w", ifname, err)
	}
	return parseChannels(buf)
}

func parseChannels(buf []byte) (Channels, error) {
	if len(buf) < sizeofChannels {
		return Channels{}, fmt.Errorf("nic: ethtool channels: %d bytes, want %d", len(buf), sizeofChannels)
	}
	u := func(i int) uint32 { return binary.NativeEndian.Uint32(buf[4+4*i:]) }
	return Channels{
		MaxRx: u(0), MaxTx: u(1), MaxOther: u(2), MaxCombined: u(3),
		Rx: u(4), Tx: u(5), Other: u(6), Combined: u(7),
	}, nil
}

// SetCommand is the ethtool command that gives the interface n rx queues:
// combined channels where the driver has them, else rx channels.
func (c Channels) SetCommand(ifname string, n int) string {
	if c.MaxCombined > 0 {
		return fmt.Sprintf("ethtool -L %s combined %d", ifname, n)
	}
	return fmt.Sprintf("ethtool -L %s rx %d", ifname, n)
}
