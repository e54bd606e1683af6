namespace Apm.Jvm.PerfData;

/// <summary>
/// An hsperfdata buffer that cannot be parsed: bad magic, unsupported version, an offset or length outside
/// the buffer, an unknown data type. The message names the reason and, where it applies, the entry index.
/// </summary>
public class PerfDataFormatException : Exception
{
    /// <summary>Creates the exception with an empty reason (for serializers and tooling).</summary>
    public PerfDataFormatException()
    {
    }

    /// <summary>Creates the exception with a reason such as "entry 17 name offset beyond file".</summary>
    public PerfDataFormatException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a reason and the error that caused it.</summary>
    public PerfDataFormatException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>
/// The buffer is well formed so far but the JVM has not set its accessible flag yet (it is still starting).
/// A subclass so that callers that treat every parse failure alike can keep catching one type.
/// </summary>
public sealed class PerfDataNotAccessibleException : PerfDataFormatException
{
    /// <summary>Creates the exception with an empty reason.</summary>
    public PerfDataNotAccessibleException()
    {
    }

    /// <summary>Creates the exception with a reason.</summary>
    public PerfDataNotAccessibleException(string message)
        : base(message)
    {
    }

    /// <summary>Creates the exception with a reason and the error that caused it.</summary>
    public PerfDataNotAccessibleException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
