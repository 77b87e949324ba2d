# What the journal does once per boot (journal.py): count the boot, and read
# the segments back into the journal's RAM state. Loaded by Journal() for that
# and forgotten after it, so its code is not on the heap while the device runs.


def load(j):
    """Journal j's boot number (counted on flash: this boot's) and its segments'
    state: the last sequence number, what is pending where, the newest
    segment's records, the lines torn by a power cut (skipped and counted)."""
    j.boot = _next_boot(j)
    numbers = []
    for name in j.os.listdir(j.folder):
        if name.endswith(".log") and name[:-4].isdigit():
            numbers.append(int(name[:-4]))
    numbers.sort()
    j._segments = numbers
    torn_tail = False
    for number in numbers:
        count = 0
        torn_tail = False
        try:
            f = j.open(j._path(number))
        except OSError:
            j._count = 0
            continue
        with f:
            for line in f:
                rec = j._parse(line) if line.endswith("\n") else None
                if rec is None:
                    j.torn += 1
                    torn_tail = True
                    continue
                torn_tail = False
                count += 1
                seq, _, kind, critical, _ = rec
                if kind == "ack":
                    j._settled(seq)
                    continue
                if seq > j.seq:
                    j.seq = seq
                j.pending.add(seq, number, critical)
        j._count = count
    if torn_tail:
        # Never append after a torn line: the next record would be glued to it.
        j._count = j.segment_records
    j._shrink_due = len(numbers) > j.max_segments


def _next_boot(j):
    path = j.folder + "/boot"
    n = 0
    try:
        with j.open(path) as f:
            n = int(f.read().strip() or "0")
    except (OSError, ValueError):
        n = 0
    n += 1
    tmp = path + ".tmp"
    with j.open(tmp, "w") as f:
        f.write("%d\n" % n)
    j.os.rename(tmp, path)
    return n
