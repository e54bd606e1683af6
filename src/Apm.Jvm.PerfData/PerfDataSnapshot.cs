using System.Collections;
using System.Diagnostics.CodeAnalysis;

namespace Apm.Jvm.PerfData;

/// <summary>
/// The counters of one hsperfdata buffer at one moment: a private copy of its non-constant values (about 2 KiB
/// for a default JVM) plus a shared, validated layout that holds the names and the constants. Immutable and safe
/// to read from any thread; lookups by name are one dictionary probe and do not allocate (except
/// <see cref="TryGetString"/> for non-constant strings).
/// </summary>
public sealed class PerfDataSnapshot : IReadOnlyCollection<PerfDataCounter>
{
    private readonly byte[] _values;
    private readonly PerfDataLayout _layout;
    private readonly PerfDataHeader _header;

    internal PerfDataSnapshot(byte[] values, PerfDataLayout layout, in PerfDataHeader header, long bufferSize)
    {
        _values = values;
        _layout = layout;
        _header = header;
        BufferSize = bufferSize;
    }

    /// <summary>Size of the whole hsperfdata buffer (the file), used or not; jcmd shows it as sun.perfdata.size.</summary>
    public long BufferSize { get; }

    /// <summary>Number of counters.</summary>
    public int Count => _layout.Entries.Length;

    // The prologue fields below are what jvmstat and jcmd show as the pseudo counters sun.perfdata.*: they
    // are not entries of the file.

    /// <summary>The prologue's mod_time_stamp: changes when the JVM adds counters (sun.perfdata.timestamp).</summary>
    public long ModificationTimeStamp => _header.ModTimeStamp;

    /// <summary>Bytes of the buffer in use, prologue and entries (sun.perfdata.used).</summary>
    public int UsedBytes => _header.Used;

    /// <summary>Bytes of counters the JVM could not fit into the buffer, which are missing from it (sun.perfdata.overflow).</summary>
    public int OverflowBytes => _header.Overflow;

    /// <summary>Whether the JVM wrote the buffer little-endian.</summary>
    public bool IsLittleEndian => _header.LittleEndian;

    /// <summary>
    /// Parses a complete hsperfdata buffer (a copy of a file, for tests and tools). Throws
    /// <see cref="PerfDataFormatException"/> with the reason when the buffer is malformed.
    /// </summary>
    public static PerfDataSnapshot Parse(ReadOnlySpan<byte> buffer)
    {
        var header = PerfDataLayout.ReadHeader(buffer, buffer.Length);
        var layout = PerfDataLayout.Build(buffer, header);
        return new PerfDataSnapshot(layout.CopyValues(buffer), layout, header, buffer.Length);
    }

    /// <summary>Whether a counter of that name exists.</summary>
    public bool Contains(string name) => _layout.ByName.ContainsKey(name);

    /// <summary>The value of a scalar long counter; false when absent or not a scalar long.</summary>
    public bool TryGetLong(string name, out long value)
    {
        if (_layout.ByName.TryGetValue(name, out var i))
        {
            ref readonly var e = ref _layout.Entries[i];
            if (e.Type == PerfDataType.Long && e.VectorLength == 0)
            {
                value = LongOf(e);
                return true;
            }
        }

        value = 0;
        return false;
    }

    /// <summary>The value of a scalar long counter, or <paramref name="fallback"/> when absent.</summary>
    public long GetLongOrDefault(string name, long fallback = 0) => TryGetLong(name, out var v) ? v : fallback;

    /// <summary>
    /// The text of a string (byte array) counter up to its first NUL; false when absent or not a string.
    /// Constant strings come from the layout's cache; others are decoded (one allocation).
    /// </summary>
    public bool TryGetString(string name, [NotNullWhen(true)] out string? value)
    {
        if (_layout.ByName.TryGetValue(name, out var i))
        {
            ref readonly var e = ref _layout.Entries[i];
            if (e.Type == PerfDataType.ByteArray)
            {
                value = StringOf(e);
                return true;
            }
        }

        value = null;
        return false;
    }

    /// <summary>The text of a string counter, or <paramref name="fallback"/> when absent.</summary>
    public string GetStringOrDefault(string name, string fallback = "") => TryGetString(name, out var v) ? v : fallback;

    /// <summary>Every counter in file order, with its value (decodes each string: not for the hot path).</summary>
    public IEnumerator<PerfDataCounter> GetEnumerator()
    {
        foreach (var e in _layout.Entries)
        {
            var l = e.Type == PerfDataType.Long && e.VectorLength == 0 ? LongOf(e) : 0;
            var s = e.Type == PerfDataType.ByteArray ? StringOf(e) : null;
            yield return new PerfDataCounter(e.Name, e.Type, e.Units, e.Variability, e.VectorLength, l, s);
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private long LongOf(in EntryInfo e) =>
        e.Slot < 0 ? e.ConstantLong : PerfDataLayout.ReadInt64(_values.AsSpan(e.Slot, 8), _header.LittleEndian);

    private string StringOf(in EntryInfo e) =>
        e.ConstantString ?? PerfDataLayout.DecodeString(_values.AsSpan(e.Slot, e.Size));
}
