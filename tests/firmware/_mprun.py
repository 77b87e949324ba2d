# Runs firmware test functions inside MicroPython; started by tests/firmware/conftest.py.
#   MICROPYPATH=DIR:DIR... micropython _mprun.py MODULE TEST [TEST...]
# Each test's output is framed by lines starting with \x1e so the host can tell
# tests apart, whatever the tests print.

import gc
import sys


def main():
    name = sys.argv[1]
    tests = sys.argv[2:]
    try:
        mod = __import__(name)
    except BaseException as e:  # noqa: BLE001 - a broken module fails every test in it
        print("\x1eIMPORT-FAILED")
        sys.print_exception(e)
        print("\x1eEND")
        return
    from fwtest import Skipped

    for test in tests:
        gc.collect()
        print("\x1eSTART " + test)
        status = "PASS"
        try:
            getattr(mod, test)()
        except Skipped as e:
            status = "SKIP"
            print(e.args[0] if e.args else "")
        except Exception as e:  # noqa: BLE001 - includes MemoryError: the heap is limited
            status = "FAIL"
            sys.print_exception(e)
        gc.collect()
        print("\x1e%s %s %d" % (status, test, gc.mem_alloc()))
    print("\x1eEND")


main()
