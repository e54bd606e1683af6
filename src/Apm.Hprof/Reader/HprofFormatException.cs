namespace Apm.Hprof.Reader;

/// <summary>What is wrong with a file that could not be read as HPROF; the CLI maps each to its own exit code.</summary>
public enum HprofErrorKind
{
    /// <summary>The file does not start with an HPROF header.</summary>
    NotHprof,

    /// <summary>A record runs past the end of the file.</summary>
    Truncated,

    /// <summary>A record or sub-record is malformed (unknown tag, bad type, length that does not fit).</summary>
    Corrupt,
}

/// <summary>
/// Thrown for any input that is not a well-formed HPROF 1.0.x file. The message names the byte offset and the
/// tag being read, so a user can tell a cut-off download from a damaged file.
/// </summary>
public sealed class HprofFormatException : Exception
{
    public HprofFormatException()
    {
    }

    public HprofFormatException(string message)
        : base(message)
    {
    }

    public HprofFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    public HprofFormatException(HprofErrorKind kind, long offset, int tag, string reason)
        : base(FormattableString.Invariant($"{Describe(kind)} at offset {offset} (tag 0x{tag:X2}): {reason}"))
    {
        Kind = kind;
        Offset = offset;
        Tag = tag;
    }

    /// <summary>Which kind of damage; <see cref="HprofErrorKind.Corrupt"/> when constructed without one.</summary>
    public HprofErrorKind Kind { get; } = HprofErrorKind.Corrupt;

    /// <summary>Byte offset in the file where the offending record or field starts.</summary>
    public long Offset { get; }

    /// <summary>Tag of the record or sub-record being read, or -1 for the header.</summary>
    public int Tag { get; } = -1;

    private static string Describe(HprofErrorKind kind) => kind switch
    {
        HprofErrorKind.NotHprof => "not an HPROF file",
        HprofErrorKind.Truncated => "truncated HPROF file",
        _ => "corrupt HPROF file",
    };
}
