# The store that never loses the last good configuration, and puts a trial one
# from afar back when it does not work. CPython, float32, MicroPython.

import json
import os

from configstore import Store
from fwtest import raises, read, tempdir, write
from lampconfig import ConfigError, loads

SHIPPED = "firmware/lamp/config.json"  # the tests run from the repository root


def good():
    return json.loads(read(SHIPPED))


def _store():
    d = tempdir()
    path, default = d + "/lamp.json", d + "/config.json"
    write(default, read(SHIPPED))
    return Store(os, path, default, loads), d


def test_store_keeps_the_last_good_configuration():
    store, d = _store()
    path, default = d + "/lamp.json", d + "/config.json"
    # Nothing installed yet: the app's default.
    assert store.load().name == "G60 park, Songjiang"
    # A good new configuration is installed atomically and becomes the last good one.
    new = good()
    new["site"]["name"] = "North gate"
    store.save(json.dumps(new))
    assert store.load().name == "North gate"
    assert "lamp.json.tmp" not in os.listdir(d)
    # A bad one is refused and changes nothing.
    bad = good()
    bad["site"]["tz"] = "nonsense"
    raises(ConfigError, store.save, json.dumps(bad))
    assert store.load().name == "North gate"
    # A bad file put there by hand (mpremote cp, a torn write): the last good one runs,
    # and the reason is kept to be reported.
    write(path, '{"site": ')
    assert store.load().name == "North gate"
    assert store.errors and store.errors[0].startswith(path + ": (file): not valid JSON")
    # Nothing readable at all: an error the caller turns into the lit fallback.
    write(path + ".good", "[]")
    write(default, "")
    e = raises(ConfigError, store.load)
    assert len(e.errors) == 3


def test_a_configuration_from_afar_is_on_trial():
    store, d = _store()
    first = good()
    first["site"]["name"] = "North gate"
    store.save(json.dumps(first))
    # From the centre: in force at once, but not yet the last good one.
    trial = good()
    trial["site"]["name"] = "Trial"
    store.save(json.dumps(trial), trial=True)
    assert store.load().name == "Trial" and store.trial
    assert json.loads(read(d + "/lamp.json.good"))["site"]["name"] == "North gate"
    # It did not reach the centre: the last good one comes back, for good.
    store.rollback()
    assert store.load().name == "North gate" and not store.trial
    # Another trial that works: confirmed, it is the last good one now.
    store.save(json.dumps(trial), trial=True)
    assert store.load().name == "Trial"
    store.confirm()
    assert store.load().name == "Trial" and not store.trial
    assert json.loads(read(d + "/lamp.json.good"))["site"]["name"] == "Trial"


def test_a_configuration_from_afar_on_a_zone_too_far_from_its_site_is_refused():
    # Issue 22: a site whose clock is hours from its solar time (here Songjiang with
    # the longitude's sign lost: CST-8 at 121 W) is refused like any bad one, with
    # the reason; the last good configuration stays in force, and nothing is on trial.
    store, d = _store()
    first = good()
    first["site"]["name"] = "North gate"
    store.save(json.dumps(first))
    far = good()
    far["site"]["name"] = "Far"
    far["site"]["lon"] = -121.23
    e = raises(ConfigError, store.save, json.dumps(far), trial=True)
    assert e.errors[0].startswith("site.tz: CST-8 is 7 h 55 min from the solar time at longitude -121.23"), (
        e.errors
    )
    assert store.load().name == "North gate" and not store.trial
    assert "lamp.json.trial" not in os.listdir(d)


def test_a_trial_with_nothing_good_before_it_falls_back_to_the_default():
    store, d = _store()
    trial = good()
    trial["site"]["name"] = "Trial"
    store.save(json.dumps(trial), trial=True)
    assert store.load().name == "Trial"
    store.rollback()
    assert store.load().name == "G60 park, Songjiang"
    assert "lamp.json" not in os.listdir(d)


def test_load_or_falls_back_when_no_file_can_be_used():
    d = tempdir()
    store = Store(os, d + "/lamp.json", d + "/config.json", loads)
    write(d + "/lamp.json", "{broken")
    assert store.load_or(lambda: "the fallback") == "the fallback"
    assert store.errors[0].startswith(d + "/lamp.json: (file): not valid JSON")
    write(d + "/config.json", read(SHIPPED))
    assert store.load_or(lambda: "the fallback").name == "G60 park, Songjiang"


def _names(d):
    return sorted(n for n in os.listdir(d) if n.startswith("lamp.json"))


def test_a_stray_trial_marker_is_removed_at_boot_and_nothing_raises():
    # Issue 20, finding 4: the flash older firmware left when the power went
    # between writing its (empty) trial marker and the configuration itself, on
    # a board that had none yet. It used to boot on trial, and confirm() raised
    # FileNotFoundError at every pass once the broker was reachable.
    store, d = _store()
    write(d + "/lamp.json.trial", "")
    cfg = store.load()
    assert cfg.name == "G60 park, Songjiang" and not store.trial
    assert _names(d) == []
    assert store.errors == [d + "/lamp.json.trial: a trial marker with no configuration: removed"]
    store.confirm()  # raises nothing: there is nothing on trial
    store.rollback()
    assert store.load().name == "G60 park, Songjiang" and not store.trial


def test_older_firmwares_trial_stays_on_trial():
    # An empty marker beside a configuration: older firmware's layout of a trial.
    store, d = _store()
    first = good()
    first["site"]["name"] = "North gate"
    store.save(json.dumps(first))
    trial = good()
    trial["site"]["name"] = "Trial"
    write(d + "/lamp.json", json.dumps(trial))
    write(d + "/lamp.json.trial", "")
    assert store.load().name == "Trial" and store.trial
    store.rollback()
    assert store.load().name == "North gate" and not store.trial
    # The same, confirmed this time.
    write(d + "/lamp.json", json.dumps(trial))
    write(d + "/lamp.json.trial", "")
    assert store.load().name == "Trial" and store.trial
    store.confirm()
    assert store.load().name == "Trial" and not store.trial
    assert _names(d) == ["lamp.json", "lamp.json.good"]
    assert json.loads(read(d + "/lamp.json.good"))["site"]["name"] == "Trial"


def test_unfinished_writes_are_removed_at_boot_and_change_nothing():
    store, d = _store()
    first = good()
    first["site"]["name"] = "North gate"
    store.save(json.dumps(first))
    for name in ("lamp.json.tmp", "lamp.json.good.tmp", "lamp.json.trial.tmp"):
        write(d + "/" + name, '{"site": {"na')  # torn where the power went
    assert store.load().name == "North gate" and not store.trial
    assert _names(d) == ["lamp.json", "lamp.json.good"]


def test_a_trial_that_cannot_be_read_is_over():
    store, d = _store()
    write(d + "/lamp.json.trial", "{not json")
    assert store.load().name == "G60 park, Songjiang" and not store.trial
    assert _names(d) == []
    assert store.errors[0].startswith(d + "/lamp.json.trial: (file): not valid JSON")


def test_a_rollback_with_no_good_copy_boots_the_default():
    store, d = _store()
    trial = good()
    trial["site"]["name"] = "Trial"
    store.save(json.dumps(trial), trial=True)
    os.remove(d + "/config.json")  # not even the shipped one: the caller's fallback
    store.rollback()
    assert _names(d) == []
    assert store.load_or(lambda: "the fallback") == "the fallback" and not store.trial


def _on_trial(name="Trial"):
    store, d = _store()
    first = good()
    first["site"]["name"] = "North gate"
    store.save(json.dumps(first))
    trial = good()
    trial["site"]["name"] = name
    store.save(json.dumps(trial), trial=True)
    return d


def _boot(d):
    # A boot: RAM is lost, the store is made afresh and loads from flash.
    store = Store(os, d + "/lamp.json", d + "/config.json", loads)
    return store, store.load()


def test_a_trial_is_over_after_its_boots_however_short():
    # Issue 24: the trial's clock used to restart at every boot, so a
    # configuration that reset the board every few seconds was never rolled back.
    from configstore import TRIAL_LEASE_MS
    from configtrial import TRIAL_BOOTS, TRIAL_MS

    d = _on_trial()
    for n in range(TRIAL_BOOTS):
        store, cfg = _boot(d)
        assert cfg.name == "Trial" and store.trial and store.counted[0] == n + 1
        assert store.counted[2] == TRIAL_MS - n * TRIAL_LEASE_MS  # each boot counted a lease ahead
    store, cfg = _boot(d)
    assert cfg.name == "North gate" and not store.trial
    assert (
        store.rolled_back
        == "no contact with the centre with the new configuration in %d boots (%d s on trial): rolled back"
        % (
            TRIAL_BOOTS,
            TRIAL_BOOTS * TRIAL_LEASE_MS // 1000,
        )
    )
    assert _names(d) == ["lamp.json", "lamp.json.good"]
    store, cfg = _boot(d)  # said once
    assert cfg.name == "North gate" and store.rolled_back is None


def test_a_trials_time_is_counted_across_boots():
    from configstore import TRIAL_LEASE_MS
    from configtrial import TRIAL_MS

    d = _on_trial()
    store, cfg = _boot(d)
    for _ in range(TRIAL_MS // TRIAL_LEASE_MS // 2 - 1):
        store.extend_trial()  # the app, every lease while the trial runs
    store, cfg = _boot(d)  # half the time gone
    assert store.trial and store.counted[2] == TRIAL_MS // 2
    for _ in range(TRIAL_MS // TRIAL_LEASE_MS // 2 - 1):
        store.extend_trial()
    store, cfg = _boot(d)
    assert not store.trial and cfg.name == "North gate"
    assert store.rolled_back.endswith("in 2 boots (%d s on trial): rolled back" % (TRIAL_MS // 1000))


def test_a_new_trial_starts_its_clock_again():
    d = _on_trial("First")
    for _ in range(3):
        store, cfg = _boot(d)
    assert store.counted[0] == 3
    trial = good()
    trial["site"]["name"] = "Second"
    store.save(json.dumps(trial), trial=True)
    store, cfg = _boot(d)
    assert cfg.name == "Second" and store.counted[0] == 1
    store.confirm()
    assert _names(d) == ["lamp.json", "lamp.json.good"]


def test_a_trials_age_that_cannot_be_read_ends_it_and_a_stray_one_goes():
    d = _on_trial()
    write(d + "/lamp.json.trial.age", "3")
    store, cfg = _boot(d)
    assert cfg.name == "North gate" and not store.trial and store.rolled_back
    assert _names(d) == ["lamp.json", "lamp.json.good"]
    # An age with no trial (a cut between a confirm and its removal): removed.
    write(d + "/lamp.json.trial.age", "1 30000")
    write(d + "/lamp.json.trial.age.tmp", "2 6")
    store, cfg = _boot(d)
    assert cfg.name == "North gate" and not store.rolled_back
    assert _names(d) == ["lamp.json", "lamp.json.good"]
