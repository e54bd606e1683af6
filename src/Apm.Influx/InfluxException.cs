using System.Net;

namespace Apm.Influx;

/// <summary>A write that InfluxDB refused (4xx, not retried) or that failed after every retry.</summary>
public sealed class InfluxWriteException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InfluxWriteException(string message, HttpStatusCode? statusCode = null, string? serverError = null, Exception? inner = null)
        : base(message, inner)
    {
        StatusCode = statusCode;
        ServerError = serverError;
    }

    /// <summary>Creates the exception.</summary>
    public InfluxWriteException() : this("InfluxDB write failed.") { }

    /// <summary>Creates the exception.</summary>
    public InfluxWriteException(string message) : this(message, null, null, null) { }

    /// <summary>Creates the exception.</summary>
    public InfluxWriteException(string message, Exception inner) : this(message, null, null, inner) { }

    /// <summary>HTTP status of the last answer; null when the server never answered.</summary>
    public HttpStatusCode? StatusCode { get; }

    /// <summary>The server's own error text (the "error" member of its JSON answer), e.g. "partial write: ...".</summary>
    public string? ServerError { get; }

    /// <summary>True when the server refused the data itself (retrying the same lines cannot help).</summary>
    public bool IsRejected => StatusCode is { } s && (int)s is >= 400 and < 500 && s != HttpStatusCode.TooManyRequests;
}

/// <summary>A query that failed: HTTP error, a statement error in the answer, or an answer too large or malformed.</summary>
public sealed class InfluxQueryException : Exception
{
    /// <summary>Creates the exception.</summary>
    public InfluxQueryException(string message, HttpStatusCode? statusCode = null, Exception? inner = null) : base(message, inner)
        => StatusCode = statusCode;

    /// <summary>Creates the exception.</summary>
    public InfluxQueryException() : this("InfluxDB query failed.") { }

    /// <summary>Creates the exception.</summary>
    public InfluxQueryException(string message) : this(message, null, null) { }

    /// <summary>Creates the exception.</summary>
    public InfluxQueryException(string message, Exception inner) : this(message, null, inner) { }

    /// <summary>HTTP status, when the server answered.</summary>
    public HttpStatusCode? StatusCode { get; }
}
