# What each supported chip's GPIOs can do, for checking a configuration's pins
# (check(), on the device and in `parkctl config check`) and for the
# simulator's machine.Pin and machine.ADC, which refuse what the chip refuses.
# Loaded with the configuration's parser and forgotten with it (the lamp's
# settings.loads): none of it stays on the heap.
#
# One character a GPIO, from GPIO 0 (the datasheets' pin tables; MicroPython's
# ports/esp32 machine_pin.h and machine_adc.c say which of them it offers):
#   .  no such GPIO on the chip
#   f  wired to the module's flash or PSRAM: the chip stops if it is used
#   i  input only, with ADC1 (ESP32 34-39: no output driver, no pull-up)
#   g  input and output, no ADC
#   a  input and output, ADC1
#   b  input and output, ADC2: unusable while Wi-Fi is on (the radio owns ADC2)
# The ESP32 is the lamp's ESP32-WROOM-32 (no PSRAM: 16 and 17 are free; GPIO 20
# exists only in the PICO-V3 package). The ESP32-S3 is the kiosk's module with
# octal PSRAM (ESP32-S3-WROOM-1 N8R8): 26-32 are its flash, 33-37 the PSRAM;
# a module with quad PSRAM leaves 33-37 free, but nothing here needs them.
#
# pins[chip]: (that, the catch of using each GPIO (S: a strapping pin, read at
# reset to choose how the chip boots; C: the serial console's UART0; U: the USB
# port's D-/D+), words for the messages).
#
# Few names, short locals, no short strings, roles as numbers: each new name
# goes into MicroPython's name table, which grows by a whole pool at a time; the
# firmware tests' interpreter (100 KB) has room for only a few more.
pins = {
    "esp32": (
        "bgbgbgffffffbbbbgggg.ggg.bbb....aaiiiiii",
        "SCSC S      S  S",
        "the ESP32 has",
        "an ADC1 pin (32-39)",
    ),
    "esp32s3": (
        "gaaaaaaaaaabbbbbbbbbbg....ffffffffffffggggggggggg",
        "S  S               UU                      CCSS",
        "the ESP32-S3 has",
        "an ADC1 pin (1-10)",
    ),
}


def parse(c, d, p, r, v):
    """Into the configcheck.Checker c: the configuration d's "chip" (default
    v, the app's) and its pins p (the numbers parsed): each of r ({name: role})
    a GPIO the chip has and can use that way, else an error naming it and why;
    one with a catch (a strapping pin) warned of. Roles: 0 driven (an output,
    or I2C's open-drain lines), 1 read, 2 read with the internal pull-up, 3 an
    analog input (while Wi-Fi may be on)."""
    s = c.text(d, "chip", "", v)
    if s not in pins:
        c.error("chip", "must be one of %s" % ", ".join(sorted(pins)))
        s = v
    s = pins[s]
    for k in r:
        t = "pins" + "." + k
        n = p[k]
        if [e for e in c.errors if e.startswith(t + ":")]:
            continue  # said already: not a number, or out of range
        if not isinstance(n, int):
            c.error(t, "must be a whole GPIO number, not %s" % n)
            continue
        e = s[0][n] if n < len(s[0]) else "."
        x = r[k]
        if e == ".":
            c.error(t, "%s no GPIO %d" % (s[2], n))
        elif e == "f":
            c.error(t, "GPIO %d is wired to the module's flash/PSRAM: using it stops the chip" % n)
        elif x == 3 and e == "b":
            c.error(t, "GPIO %d is on ADC2, which stops working while Wi-Fi is on; use %s" % (n, s[3]))
        elif x == 3 and e == "g":
            c.error(t, "GPIO %d has no ADC on %s; use %s" % (n, s[2][:-4], s[3]))
        elif x == 0 and e == "i":
            c.error(t, "GPIO %d is input only: it cannot drive an output" % n)
        elif x == 2 and e == "i":
            c.error(t, "GPIO %d has no internal pull-up: the input would float" % n)
        else:
            e = s[1][n] if n < len(s[1]) else " "
            if e == "S":
                e = "a strapping pin (read at reset to choose the boot mode): what is wired to it must not pull it the wrong way at power-on"
            elif e == "C":
                e = "the serial console's UART0 TX/RX: the console stops working"
            elif e == "U":
                e = "the USB port's D-/D+: the USB console stops working"
            else:
                continue
            c.warnings.append("%s: GPIO %d is %s" % (t, n, e))
