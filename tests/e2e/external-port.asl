/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * An SSDT, loaded through the kernel's initrd ACPI table upgrade
 * (kernel/firmware/acpi/ in an uncompressed cpio before the initramfs), that
 * marks one PCIe root port as an external-facing port the way firmware
 * marks Thunderbolt/USB4 ports: the _DSD property "ExternalFacingPort".
 * Linux then sets pci_dev->external_facing on the port and ->untrusted on
 * every device below it. PORT is replaced by run.sh with the ACPI name QEMU
 * gives the root port (S<devfn in hex>).
 */
DefinitionBlock ("", "SSDT", 2, "VIOMMU", "EXTPORT", 1)
{
	External (\_SB.PCI0.PORT, DeviceObj)

	Scope (\_SB.PCI0.PORT)
	{
		Name (_DSD, Package () {
			ToUUID ("efcc06cc-73ac-4bc3-bff0-76143807c389"),
			Package () {
				Package () { "ExternalFacingPort", 1 },
				Package () { "UID", 0 },
			}
		})
	}
}
