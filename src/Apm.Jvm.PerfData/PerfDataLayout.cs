using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Apm.Jvm.PerfData;

/// <summary>
/// Where every entry of one hsperfdata buffer lives, validated once. HotSpot only appends entries (and then
/// changes used, num_entries and mod_time_stamp), so a layout is reused while those header fields stay the
/// same: a steady-state read does no per-entry parsing and allocates no names.
/// </summary>
internal sealed class PerfDataLayout
{
    internal const int PrologueSize = 32;
    internal const int EntryHeaderSize = 20;

    private PerfDataLayout(in PerfDataHeader header, EntryInfo[] entries, Dictionary<string, int> byName, int valueBytes)
    {
        Header = header;
        Entries = entries;
        ByName = byName;
        ValueBytes = valueBytes;
    }

    /// <summary>Size of a snapshot's value buffer: the non-constant values only (constants live in the layout).</summary>
    internal int ValueBytes { get; }

    internal PerfDataHeader Header { get; }

    internal EntryInfo[] Entries { get; }

    internal Dictionary<string, int> ByName { get; }

    /// <summary>True when <paramref name="header"/> describes the same entries as this layout.</summary>
    internal bool Matches(in PerfDataHeader header) =>
        header.Used == Header.Used && header.NumEntries == Header.NumEntries && header.EntryOffset == Header.EntryOffset &&
        header.ModTimeStamp == Header.ModTimeStamp && header.LittleEndian == Header.LittleEndian;

    /// <summary>
    /// Reads and checks the 32-byte prologue. Throws <see cref="PerfDataFormatException"/> with the reason, or
    /// <see cref="PerfDataNotAccessibleException"/> when the JVM has not finished writing it.
    /// </summary>
    /// <param name="data">At least the prologue; <paramref name="capacity"/> is the size of the whole buffer.</param>
    internal static PerfDataHeader ReadHeader(ReadOnlySpan<byte> data, long capacity)
    {
        if (data.Length < PrologueSize || capacity < PrologueSize)
        {
            throw new PerfDataFormatException($"truncated: {Math.Min(data.Length, capacity)} bytes, the prologue needs {PrologueSize}");
        }

        // The magic is written big-endian whatever the byte order of the rest.
        var magic = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (magic != 0xCAFEC0C0u) throw new PerfDataFormatException($"bad magic 0x{magic:X8}, expected 0xCAFEC0C0");
        var order = data[4];
        if (order > 1) throw new PerfDataFormatException($"bad byte order {order}, expected 0 (big) or 1 (little)");
        var little = order == 1;
        int major = data[5], minor = data[6];
        if (major != 2 || minor != 0) throw new PerfDataFormatException($"unsupported version {major}.{minor}, only 2.0 is known");
        var accessible = data[7];
        var used = ReadInt32(data[8..], little);
        var overflow = ReadInt32(data[12..], little);
        var modTime = little ? BinaryPrimitives.ReadInt64LittleEndian(data[16..]) : BinaryPrimitives.ReadInt64BigEndian(data[16..]);
        var entryOffset = ReadInt32(data[24..], little);
        var numEntries = ReadInt32(data[28..], little);
        if (accessible == 0) throw new PerfDataNotAccessibleException("not accessible yet: the JVM is still initializing its counters");
        if (used < PrologueSize || used > capacity)
        {
            throw new PerfDataFormatException($"used {used} outside the buffer of {capacity} bytes");
        }

        if (entryOffset < PrologueSize || entryOffset > used)
        {
            throw new PerfDataFormatException($"entry offset {entryOffset} outside the used {used} bytes");
        }

        if (numEntries < 0 || numEntries > (used - entryOffset) / EntryHeaderSize)
        {
            throw new PerfDataFormatException($"{numEntries} entries cannot fit in {used - entryOffset} bytes");
        }

        return new PerfDataHeader(little, used, overflow, modTime, entryOffset, numEntries);
    }

    /// <summary>Validates every entry of <paramref name="data"/> (the used bytes, header included) and indexes them.</summary>
    internal static PerfDataLayout Build(ReadOnlySpan<byte> data, in PerfDataHeader header)
    {
        var little = header.LittleEndian;
        var used = header.Used;
        if (data.Length < used) throw new PerfDataFormatException($"truncated: {data.Length} bytes, used says {used}");
        var entries = new EntryInfo[header.NumEntries];
        var byName = new Dictionary<string, int>(header.NumEntries, StringComparer.Ordinal);
        var offset = header.EntryOffset;
        var slot = 0;
        for (var i = 0; i < entries.Length; i++)
        {
            if (used - offset < EntryHeaderSize)
            {
                throw new PerfDataFormatException($"entry {i} header at offset {offset} beyond the used {used} bytes");
            }

            var e = data[offset..used];
            var entryLength = ReadInt32(e, little);
            var nameOffset = ReadInt32(e[4..], little);
            var vectorLength = ReadInt32(e[8..], little);
            var type = e[12];
            var flags = e[13];
            var units = e[14];
            var variability = e[15];
            var dataOffset = ReadInt32(e[16..], little);
            if (entryLength < EntryHeaderSize || entryLength > e.Length)
            {
                throw new PerfDataFormatException($"entry {i} length {entryLength} at offset {offset} beyond the used {used} bytes");
            }

            e = e[..entryLength];
            if (nameOffset < EntryHeaderSize || nameOffset >= entryLength)
            {
                throw new PerfDataFormatException($"entry {i} name offset {nameOffset} beyond its {entryLength} bytes");
            }

            var nameBytes = e[nameOffset..];
            var nul = nameBytes.IndexOf((byte)0);
            if (nul < 0) throw new PerfDataFormatException($"entry {i} name is not NUL-terminated within its {entryLength} bytes");
            if (nul == 0) throw new PerfDataFormatException($"entry {i} has an empty name");
            nameBytes = nameBytes[..nul];
            if (vectorLength < 0) throw new PerfDataFormatException($"entry {i} vector length {vectorLength} is negative");
            long size = type switch
            {
                (byte)'J' => vectorLength == 0 ? 8L : 8L * vectorLength,
                (byte)'B' => vectorLength,
                _ => throw new PerfDataFormatException($"entry {i} has unsupported data type 0x{type:X2}"),
            };
            if (type == (byte)'B' && vectorLength == 0) throw new PerfDataFormatException($"entry {i} is a byte array of length 0");
            if (dataOffset < EntryHeaderSize || dataOffset + size > entryLength)
            {
                throw new PerfDataFormatException($"entry {i} data offset {dataOffset} (+{size} bytes) beyond its {entryLength} bytes");
            }

            var name = Encoding.UTF8.GetString(nameBytes);
            string? constantString = null;
            long constantLong = 0;
            var entrySlot = -1;
            if (variability == (byte)PerfDataVariability.Constant && vectorLength == 0)
            {
                constantLong = ReadInt64(e[dataOffset..], little);
            }
            else if (variability == (byte)PerfDataVariability.Constant && type == (byte)'B')
            {
                // Constant strings (command line, VM version, GC names) never change: decode once per layout.
                constantString = DecodeString(e.Slice(dataOffset, vectorLength));
            }
            else
            {
                entrySlot = slot;
                slot = checked(slot + (int)size);
            }

            entries[i] = new EntryInfo(name, offset + dataOffset, entrySlot, (int)size, vectorLength, (PerfDataType)type, flags,
                (PerfDataUnits)units, (PerfDataVariability)variability, constantString, constantLong);
            byName.TryAdd(name, i);
            offset += entryLength;
        }

        return new PerfDataLayout(header, entries, byName, slot);
    }

    /// <summary>
    /// Copies the non-constant values out of <paramref name="source"/> (the buffer this layout describes, or the
    /// live mapping: every data offset was checked against the used bytes) into a new, compact array.
    /// </summary>
    internal byte[] CopyValues(ReadOnlySpan<byte> source)
    {
        var values = GC.AllocateUninitializedArray<byte>(ValueBytes);
        foreach (ref readonly var e in Entries.AsSpan())
        {
            if (e.Slot < 0) continue;
            if (e.Size == 8) MemoryMarshal.Write(values.AsSpan(e.Slot, 8), MemoryMarshal.Read<long>(source.Slice(e.DataOffset, 8)));
            else source.Slice(e.DataOffset, e.Size).CopyTo(values.AsSpan(e.Slot, e.Size));
        }

        return values;
    }

    internal static string DecodeString(ReadOnlySpan<byte> bytes)
    {
        var nul = bytes.IndexOf((byte)0);
        return Encoding.UTF8.GetString(nul < 0 ? bytes : bytes[..nul]);
    }

    internal static int ReadInt32(ReadOnlySpan<byte> data, bool little) =>
        little ? BinaryPrimitives.ReadInt32LittleEndian(data) : BinaryPrimitives.ReadInt32BigEndian(data);

    internal static long ReadInt64(ReadOnlySpan<byte> data, bool little) =>
        little ? BinaryPrimitives.ReadInt64LittleEndian(data) : BinaryPrimitives.ReadInt64BigEndian(data);
}

/// <summary>The fields of the hsperfdata prologue (HotSpot's PerfDataPrologue).</summary>
internal readonly record struct PerfDataHeader(bool LittleEndian, int Used, int Overflow, long ModTimeStamp, int EntryOffset, int NumEntries);

/// <summary>
/// One validated entry: its absolute data offset lies inside the used bytes. A constant keeps its value here
/// (Slot is -1); any other value lives at Slot in each snapshot's value array.
/// </summary>
internal readonly record struct EntryInfo(
    string Name,
    int DataOffset,
    int Slot,
    int Size,
    int VectorLength,
    PerfDataType Type,
    byte Flags,
    PerfDataUnits Units,
    PerfDataVariability Variability,
    string? ConstantString,
    long ConstantLong);
