using System.Buffers.Binary;
using System.Text;
using Apm.Jvm.PerfData;

namespace Apm.Jvm.PerfData.Tests;

/// <summary>
/// Writes small synthetic hsperfdata buffers the way HotSpot lays them out (prologue, then entries with the
/// name after the 20-byte header and the data 8-byte aligned), so parser tests need no binary fixtures.
/// </summary>
internal sealed class PerfDataWriter
{
    private readonly List<(string Name, long? Long, string? Text, int VectorLength, PerfDataVariability Variability, PerfDataUnits Units)> _entries = [];

    public bool LittleEndian { get; set; } = true;

    public byte Accessible { get; set; } = 1;

    public int Capacity { get; set; } = 4096;

    public long ModTimeStamp { get; set; } = 1234;

    public PerfDataWriter Long(string name, long value, PerfDataVariability variability = PerfDataVariability.Variable, PerfDataUnits units = PerfDataUnits.None)
    {
        _entries.Add((name, value, null, 0, variability, units));
        return this;
    }

    public PerfDataWriter String(string name, string value, PerfDataVariability variability = PerfDataVariability.Constant, int? vectorLength = null)
    {
        _entries.Add((name, null, value, vectorLength ?? (Encoding.UTF8.GetByteCount(value) + 1), variability, PerfDataUnits.String));
        return this;
    }

    /// <summary>The buffer, and the offset of every entry (for tests that corrupt one).</summary>
    public (byte[] Buffer, List<int> EntryOffsets) BuildWithOffsets()
    {
        var buffer = new byte[Capacity];
        var offsets = new List<int>();
        var offset = 32;
        foreach (var e in _entries)
        {
            offsets.Add(offset);
            var name = Encoding.UTF8.GetBytes(e.Name);
            var nameOffset = 20;
            var dataOffset = Align(nameOffset + name.Length + 1, 8);
            var dataLength = e.Long.HasValue ? 8 : e.VectorLength;
            var entryLength = Align(dataOffset + dataLength, 8);
            var span = buffer.AsSpan(offset, entryLength);
            WriteInt(span, entryLength);
            WriteInt(span[4..], nameOffset);
            WriteInt(span[8..], e.Long.HasValue ? 0 : e.VectorLength);
            span[12] = e.Long.HasValue ? (byte)'J' : (byte)'B';
            span[13] = 0;
            span[14] = (byte)e.Units;
            span[15] = (byte)e.Variability;
            WriteInt(span[16..], dataOffset);
            name.CopyTo(span[nameOffset..]);
            if (e.Long is { } l)
            {
                if (LittleEndian) BinaryPrimitives.WriteInt64LittleEndian(span[dataOffset..], l);
                else BinaryPrimitives.WriteInt64BigEndian(span[dataOffset..], l);
            }
            else
            {
                var text = Encoding.UTF8.GetBytes(e.Text!);
                text.AsSpan(0, Math.Min(text.Length, e.VectorLength)).CopyTo(span[dataOffset..]);
            }

            offset += entryLength;
        }

        BinaryPrimitives.WriteUInt32BigEndian(buffer, 0xCAFEC0C0);
        buffer[4] = LittleEndian ? (byte)1 : (byte)0;
        buffer[5] = 2;
        buffer[6] = 0;
        buffer[7] = Accessible;
        WriteInt(buffer.AsSpan(8), offset);
        WriteInt(buffer.AsSpan(12), 0);
        if (LittleEndian) BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(16), ModTimeStamp);
        else BinaryPrimitives.WriteInt64BigEndian(buffer.AsSpan(16), ModTimeStamp);
        WriteInt(buffer.AsSpan(24), 32);
        WriteInt(buffer.AsSpan(28), _entries.Count);
        return (buffer, offsets);
    }

    public byte[] Build() => BuildWithOffsets().Buffer;

    /// <summary>Writes an int in the buffer's byte order (for corrupting fields).</summary>
    public void WriteInt(Span<byte> span, int value)
    {
        if (LittleEndian) BinaryPrimitives.WriteInt32LittleEndian(span, value);
        else BinaryPrimitives.WriteInt32BigEndian(span, value);
    }

    private static int Align(int value, int to) => (value + to - 1) / to * to;
}
