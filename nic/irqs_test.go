package nic

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// This machine's /proc/interrupts (a VM: virtio_net is virtio2), with lines
// added in the shapes real NIC drivers write: i40e's and ice's
// "DRIVER-IFNAME-TxRx-N", igb's "IFNAME-TxRx-N", e1000e's separate rx and
// tx vectors and link vector, an older kernel's "PCI-MSI-edge" in one field,
// a shared IRQ, and an interface whose name starts like ours (eth01).
const procInterrupts = `           CPU0       CPU1       
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 33:          0          0 PCI-MSIX-0000:00:05.0   0-edge      virtio4-config
 34:        448          0 PCI-MSIX-0000:00:05.0   1-edge      virtio4-input
 36:          0    1130092 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0
 37:          0          0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config
 38:          0       7147 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0
 39:       8568          0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0
 40:          0       7147 PCI-MSIX-0000:00:03.0   3-edge      virtio2-input.1
 41:       8091          0 PCI-MSIX-0000:00:04.0   1-edge      virtio3-rx
 42:          0      30692 PCI-MSIX-0000:00:04.0   2-edge      virtio3-tx
 120:         5          0  IR-PCI-MSIX-0000:3b:00.0    0-edge      i40e-0000:3b:00.0:misc
 121:        10         20  IR-PCI-MSIX-0000:3b:00.0    1-edge      i40e-eth1-TxRx-0
 122:        10         20  IR-PCI-MSIX-0000:3b:00.0    2-edge      i40e-eth1-TxRx-1
 130:         1          1  IR-PCI-MSIX-0000:5e:00.0   10-edge      eth2-rx-0
 131:         1          1  IR-PCI-MSIX-0000:5e:00.0   11-edge      eth2-tx-0
 132:         1          1  IR-PCI-MSIX-0000:5e:00.0   12-edge      eth2
 140:         0          0   PCI-MSI-edge      eth3-TxRx-7
 141:         0          0   PCI-MSI-edge      eth01-TxRx-0
 150:         0          0  IO-APIC  16-fasteoi   ehci_hcd:usb1, eth4-rx-2
NMI:          0          0   Non-maskable interrupts
LOC:   27175594   26974144   Local timer interrupts
ERR:          0
`

func TestIRQsFromInterrupts(t *testing.T) {
	for _, c := range []struct {
		ifname, dev string
		want        []QueueIRQ
	}{
		{"eth0", "virtio2", []QueueIRQ{{0, 38, "virtio2-input.0"}, {1, 40, "virtio2-input.1"}}},
		{"eth1", "0000:3b:00.0", []QueueIRQ{{0, 121, "i40e-eth1-TxRx-0"}, {1, 122, "i40e-eth1-TxRx-1"}}},
		{"eth2", "0000:5e:00.0", []QueueIRQ{{0, 130, "eth2-rx-0"}}},
		{"eth3", "", []QueueIRQ{{7, 140, "eth3-TxRx-7"}}},
		{"eth0", "", nil}, // neither name: not eth01's
		{"eth4", "", []QueueIRQ{{2, 150, "eth4-rx-2"}}},
		{"veth0", "", nil},
	} {
		got, err := IRQsFromInterrupts(strings.NewReader(procInterrupts), c.ifname, c.dev)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%s (%s): -want +got:\n%s", c.ifname, c.dev, diff)
		}
	}
}

func TestCPUList(t *testing.T) {
	for s, want := range map[string][]int{
		"0": {0}, "0-3": {0, 1, 2, 3}, "0-1,8,10-11": {0, 1, 8, 10, 11}, "": nil,
	} {
		got, err := ParseCPUList(s)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseCPUList(%q) = %v, %v; want %v", s, got, err, want)
		}
		if f := FormatCPUList(want); f != s {
			t.Errorf("FormatCPUList(%v) = %q, want %q", want, f, s)
		}
	}
	for _, s := range []string{"x", "3-1", "1-", "-1", "1,,2"} {
		if got, err := ParseCPUList(s); err == nil {
			t.Errorf("ParseCPUList(%q) = %v, want an error", s, got)
		}
	}
}
