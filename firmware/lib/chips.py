# What each supported chip's GPIOs can do, for checking a configuration's pins
# (check(), on the device and in `parkctl config check`) and for the
# simulator's machine.Pin and machine.ADC, which refuse what the chip refuses.
# Loaded with the configuration's parser and forgotten with it (the lamp's
# main.loads): none of it stays on the heap.
#
# One character a GPIO, from GPIO 0 (the datasheets' pin tables; MicroPython's
# ports/esp32 machine_pin.h and machine_adc.c say which of them it offers):
#   .  no such GPIO on the chip
#   f  wired to the module's flash or PSRAM: the chip stops if it is used
#   i  input only, with ADC1 (ESP32 34-39: no output driver, no pull-up)
#   o  input and output, no ADC
#   a  input and output, ADC1
#   b  input and output, ADC2: unusable while Wi-Fi is on (the radio owns ADC2)
# The ESP32 is the lamp's ESP32-WROOM-32 (no PSRAM: 16 and 17 are free; GPIO 20
# exists only in the PICO-V3 package). The ESP32-S3 is the kiosk's module with
# octal PSRAM (ESP32-S3-WROOM-1 N8R8): 26-32 are its flash, 33-37 the PSRAM;
# a module with quad PSRAM leaves 33-37 free, but nothing here needs them.
KINDS = {
    "esp32": "bobobo" + "ffffff" + "bbbb" + "oooo" + "." + "ooo" + "." + "bbb" + "...." + "aa" + "iiiiii",
    "esp32s3": "o" + "a" * 10 + "b" * 10 + "o" + "...." + "f" * 12 + "o" * 11,
}

# Pins that work, but with a catch the configuration's reader is told of:
# (GPIOs, why). Strapping pins are read at reset to choose how the chip boots.
_STRAP = "a strapping pin (read at reset to choose the boot mode): what is wired to it must not pull it the wrong way at power-on"
NOTES = {
    "esp32": (
        ((0, 2, 5, 12, 15), _STRAP),
        ((1, 3), "the serial console's UART0 TX/RX: the console stops working"),
    ),
    "esp32s3": (
        ((0, 3, 45, 46), _STRAP),
        ((43, 44), "the serial console's UART0 TX/RX: the console stops working"),
        ((19, 20), "the USB port's D-/D+: the USB console stops working"),
    ),
}

ADC1 = {"esp32": "32-39", "esp32s3": "1-10"}  # for the reason given


def kind(chip, n):
    k = KINDS[chip]
    return k[n] if 0 <= n < len(k) else "."


def refusal(chip, n, role):
    """Why GPIO n cannot be used for `role` on `chip`, or None. role: "out"
    (driven: also I2C's open-drain lines), "pull" (read, with the internal
    pull-up), "in" (read), "adc" (an analog input while Wi-Fi may be on)."""
    k = kind(chip, n)
    name = "ESP32-S3" if chip == "esp32s3" else "ESP32"
    if k == ".":
        return "the %s has no GPIO %d" % (name, n)
    if k == "f":
        return "GPIO %d is wired to the module's flash/PSRAM: using it stops the chip" % n
    if role == "adc":
        if k == "b":
            return "GPIO %d is on ADC2, which stops working while Wi-Fi is on; use an ADC1 pin (%s)" % (
                n,
                ADC1[chip],
            )
        if k == "o":
            return "GPIO %d has no ADC on the %s; use an ADC1 pin (%s)" % (n, name, ADC1[chip])
    elif k == "i":
        if role == "out":
            return "GPIO %d is input only: it cannot drive an output" % n
        if role == "pull":
            return "GPIO %d has no internal pull-up: the input would float" % n
    return None


def note(chip, n):
    """The catch of using GPIO n on `chip`, or None."""
    for pins, why in NOTES[chip]:
        if n in pins:
            return "GPIO %d is %s" % (n, why)
    return None


def check(c, root, pins, roles, default):
    """The configuration's "chip" (default the app's) and its pins, into the
    configcheck.Checker c: each of roles ({name: "out", "pull", "in" or "adc"})
    a GPIO the chip has and can use that way, else an error naming it and why;
    one with a catch (a strapping pin) warned of. pins: the numbers parsed."""
    chip = c.text(root, "chip", "", default)
    if chip not in KINDS:
        c.error("chip", "must be one of %s" % ", ".join(sorted(KINDS)))
        chip = default
    for k in roles:
        p = "pins." + k
        if any(e.startswith(p + ":") for e in c.errors):
            continue  # said already: not a number, or out of range
        n = pins[k]
        if not isinstance(n, int):
            c.error(p, "must be a whole GPIO number, not %s" % n)
            continue
        why = refusal(chip, n, roles[k])
        if why:
            c.error(p, why)
        else:
            why = note(chip, n)
            if why:
                c.warn(p, why)
