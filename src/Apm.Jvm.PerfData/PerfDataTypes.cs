namespace Apm.Jvm.PerfData;

/// <summary>The data_type byte of an hsperfdata entry. HotSpot writes only these two.</summary>
public enum PerfDataType : byte
{
    /// <summary>'B': a byte vector, used for NUL-terminated strings.</summary>
    ByteArray = (byte)'B',

    /// <summary>'J': a 64-bit integer (a scalar, or a vector when vector_length is not 0).</summary>
    Long = (byte)'J',
}

/// <summary>The data_units byte (HotSpot's PerfData::Units).</summary>
public enum PerfDataUnits : byte
{
    /// <summary>Not set (never written by HotSpot, kept for unknown values).</summary>
    Unknown = 0,

    /// <summary>A plain number.</summary>
    None = 1,

    /// <summary>A size in bytes.</summary>
    Bytes = 2,

    /// <summary>High-resolution timer ticks: divide by sun.os.hrt.frequency for seconds.</summary>
    Ticks = 3,

    /// <summary>A count of events.</summary>
    Events = 4,

    /// <summary>A string.</summary>
    String = 5,

    /// <summary>A frequency in Hz.</summary>
    Hertz = 6,
}

/// <summary>The data_variability byte (HotSpot's PerfData::Variability).</summary>
public enum PerfDataVariability : byte
{
    /// <summary>Not set (kept for unknown values).</summary>
    Unknown = 0,

    /// <summary>Written once at startup; never changes afterwards.</summary>
    Constant = 1,

    /// <summary>Only grows.</summary>
    Monotonic = 2,

    /// <summary>Goes up and down.</summary>
    Variable = 3,
}

/// <summary>One counter of a snapshot, for enumeration (lookups by name use the Try* methods instead).</summary>
/// <param name="Name">Counter name such as "sun.gc.collector.0.invocations".</param>
/// <param name="Type">Long or byte array.</param>
/// <param name="Units">Unit of the value.</param>
/// <param name="Variability">Whether the value can change.</param>
/// <param name="VectorLength">0 for a scalar long; the byte length of a string's buffer.</param>
/// <param name="LongValue">The value of a scalar long; 0 otherwise.</param>
/// <param name="StringValue">The text of a byte array up to its first NUL; null for longs.</param>
public readonly record struct PerfDataCounter(
    string Name,
    PerfDataType Type,
    PerfDataUnits Units,
    PerfDataVariability Variability,
    int VectorLength,
    long LongValue,
    string? StringValue);
