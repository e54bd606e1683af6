using System.Buffers;
using System.Globalization;
using System.Text;

namespace Apm.Influx;

/// <summary>
/// Escaping rules of InfluxDB line protocol, checked against a real influxd 1.6.7.
/// <para>
/// Measurement: backslash before comma and space. Tag keys, tag values, field keys: backslash before comma,
/// equals sign and space. String field values: backslash before double quote and backslash. Other backslashes
/// are literal in 1.x (escaping them would store a doubled backslash), so they are written as they are.
/// </para>
/// <para>
/// What cannot round-trip is normalised, the same way in every position so that queries can match it:
/// carriage returns and line feeds become a space (a newline ends the point in every InfluxDB version), and a
/// run of backslashes directly before a comma, equals sign, space, newline or the end of the text is dropped
/// (1.x reads such a backslash as escaping the next character, and field keys and measurements cannot
/// express it at all). <see cref="Normalize"/> applies the same rules.
/// </para>
/// </summary>
public static class LineProtocol
{
    /// <summary>
    /// The text InfluxDB will store for <paramref name="value"/> used as a measurement, key or tag value:
    /// newlines become spaces, and backslashes before ',', '=', ' ', a newline or the end are removed.
    /// Use it to build the expected value of a query. Allocates only when something changes.
    /// </summary>
    public static string Normalize(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return NeedsNormalizing(value) ? NormalizeSlow(value) : value;
    }

    private static bool NeedsNormalizing(ReadOnlySpan<char> s) => s.IndexOfAny('\\', '\r', '\n') >= 0;

    // Characters that make a name or tag value need work (escaping or normalizing); most never contain any, and then
    // one vectorized scan decides and the text is appended as it is.
    private static readonly SearchValues<char> NameSpecials = SearchValues.Create("\\\r\n, ");
    private static readonly SearchValues<char> KeySpecials = SearchValues.Create("\\\r\n,= ");
    private static readonly SearchValues<char> StringFieldSpecials = SearchValues.Create("\"\\\r\n");

    private static bool IsSeparator(char c) => c is ',' or '=' or ' ' or '\r' or '\n';

    private static string NormalizeSlow(ReadOnlySpan<char> s)
    {
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '\\')
            {
                var run = i;
                while (run < s.Length && s[run] == '\\') run++;
                if (run == s.Length || IsSeparator(s[run]))
                {
                    i = run - 1; // drop the whole run
                    continue;
                }

                sb.Append(s[i..run]);
                i = run - 1;
                continue;
            }

            sb.Append(c is '\r' or '\n' ? ' ' : c);
        }

        return sb.ToString();
    }

    /// <summary>The text InfluxDB will store for <paramref name="value"/> used as a string field value (newlines become spaces).</summary>
    public static string NormalizeStringField(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.AsSpan().IndexOfAny('\r', '\n') < 0 ? value : value.Replace('\r', ' ').Replace('\n', ' ');
    }

    /// <summary>Appends an escaped measurement name. Throws when it is empty or starts with '#' (a comment line).</summary>
    public static void AppendMeasurement(StringBuilder sb, string measurement)
    {
        ArgumentNullException.ThrowIfNull(sb);
        ArgumentNullException.ThrowIfNull(measurement);
        if (measurement.Length > 0 && measurement[0] != '#' && !measurement.AsSpan().ContainsAny(NameSpecials))
        {
            sb.Append(measurement);
            return;
        }

        var s = Clean(measurement);
        if (s.IsEmpty) throw new ArgumentException("A measurement name must not be empty (or only backslashes).", nameof(measurement));
        if (s[0] == '#') throw new ArgumentException($"A measurement name must not start with '#' (InfluxDB reads the line as a comment): '{measurement}'.", nameof(measurement));
        AppendEscaped(sb, s, escapeEquals: false);
    }

    /// <summary>Appends an escaped tag key or field key. Throws when it is empty or "time" (InfluxDB drops such points).</summary>
    public static void AppendKey(StringBuilder sb, string key)
    {
        ArgumentNullException.ThrowIfNull(sb);
        ArgumentNullException.ThrowIfNull(key);
        var s = ValidateKey(key);
        if (s.ContainsAny(KeySpecials))
        {
            AppendEscaped(sb, s, escapeEquals: true);
        }
        else
        {
            sb.Append(s);
        }
    }

    /// <summary>Throws when <paramref name="key"/> cannot be a tag or field key; returns it without trailing backslashes.</summary>
    internal static ReadOnlySpan<char> ValidateKey(string key)
    {
        ArgumentNullException.ThrowIfNull(key);
        var s = NeedsNormalizing(key) ? NormalizeSlow(key) : key.AsSpan();
        if (s.IsEmpty) throw new ArgumentException("A tag or field key must not be empty (or only backslashes).", nameof(key));
        if (s.SequenceEqual("time")) throw new ArgumentException("'time' is not a valid tag or field key: InfluxDB rejects the point.", nameof(key));
        return s;
    }

    /// <summary>Appends an escaped tag value. The caller must skip empty values (InfluxDB has no empty tags).</summary>
    public static void AppendTagValue(StringBuilder sb, string value)
    {
        ArgumentNullException.ThrowIfNull(sb);
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length > 0 && !value.AsSpan().ContainsAny(KeySpecials))
        {
            sb.Append(value);
            return;
        }

        var s = Clean(value);
        if (s.IsEmpty) throw new ArgumentException("A tag value must not be empty (or only backslashes): omit the tag instead.", nameof(value));
        AppendEscaped(sb, s, escapeEquals: true);
    }

    /// <summary>Appends a string field value with its surrounding double quotes.</summary>
    public static void AppendStringFieldValue(StringBuilder sb, string value)
    {
        ArgumentNullException.ThrowIfNull(sb);
        ArgumentNullException.ThrowIfNull(value);
        sb.Append('"');
        if (!value.AsSpan().ContainsAny(StringFieldSpecials))
        {
            sb.Append(value).Append('"');
            return;
        }

        var start = 0;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (c is not ('"' or '\\' or '\r' or '\n')) continue;
            sb.Append(value, start, i - start);
            if (c is '\r' or '\n')
            {
                sb.Append(' ');
            }
            else
            {
                sb.Append('\\').Append(c);
            }

            start = i + 1;
        }

        sb.Append(value, start, value.Length - start).Append('"');
    }

    /// <summary>Appends a float field value in the shortest form that round-trips. Throws on NaN and infinities, which InfluxDB cannot store.</summary>
    public static void AppendDouble(StringBuilder sb, double value)
    {
        ArgumentNullException.ThrowIfNull(sb);
        if (!double.IsFinite(value)) throw new ArgumentOutOfRangeException(nameof(value), value, "InfluxDB cannot store NaN or infinite floats.");
        Span<char> buf = stackalloc char[32];
        if (!value.TryFormat(buf, out var n, "R", CultureInfo.InvariantCulture)) throw new InvalidOperationException("double did not fit 32 chars");
        sb.Append(buf[..n]);
    }

    /// <summary>Appends an integer field value with the 'i' suffix.</summary>
    public static void AppendInteger(StringBuilder sb, long value)
    {
        ArgumentNullException.ThrowIfNull(sb);
        sb.Append(value).Append('i');
    }

    private static ReadOnlySpan<char> Clean(string s) => NeedsNormalizing(s) ? NormalizeSlow(s) : s;

    private static void AppendEscaped(StringBuilder sb, ReadOnlySpan<char> s, bool escapeEquals)
    {
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c is ',' or ' ' || (escapeEquals && c == '='))
            {
                sb.Append(s[start..i]).Append('\\').Append(c);
                start = i + 1;
            }
        }

        sb.Append(s[start..]);
    }
}

/// <summary>
/// Writes points in line protocol into a <see cref="StringBuilder"/>, one line each, with tags sorted by key
/// (the order InfluxDB stores them in, which saves the server a sort). Reuse one instance per batch:
/// <see cref="Clear"/> keeps its buffers. Not thread-safe.
/// </summary>
/// <example>
/// <code>
/// var lp = new LineProtocolBuilder();
/// lp.Measurement("jvm.memory.used").Tag("pool", "G1 Old Gen").Field("bytes", 123L).Timestamp(ns);
/// </code>
/// </example>
public sealed class LineProtocolBuilder
{
    private readonly StringBuilder _sb;
    private readonly List<KeyValuePair<string, string>> _tags = [];
    private State _state = State.Idle;
    private int _lineStart;

    private enum State { Idle, Tags, Fields }

    /// <summary>Creates a builder over a new buffer.</summary>
    public LineProtocolBuilder(int capacity = 4096) => _sb = new StringBuilder(capacity);

    /// <summary>Creates a builder that appends to <paramref name="target"/>.</summary>
    public LineProtocolBuilder(StringBuilder target) => _sb = target ?? throw new ArgumentNullException(nameof(target));

    /// <summary>Number of complete points written since the last <see cref="Clear"/>.</summary>
    public int PointCount { get; private set; }

    /// <summary>The buffer holding complete lines (and the current point, if one is open).</summary>
    public StringBuilder Buffer => _sb;

    /// <summary>Forgets every point and keeps the buffers.</summary>
    public void Clear()
    {
        _sb.Clear();
        _tags.Clear();
        _state = State.Idle;
        _lineStart = 0;
        PointCount = 0;
    }

    /// <summary>
    /// Starts a point. A point still open with fields is ended without a timestamp; one without fields
    /// (abandoned after an exception) is discarded.
    /// </summary>
    public LineProtocolBuilder Measurement(string name)
    {
        if (_state == State.Fields) End();
        if (_state == State.Tags)
        {
            _sb.Length = _lineStart;
            _tags.Clear();
            _state = State.Idle;
        }

        _lineStart = _sb.Length;
        LineProtocol.AppendMeasurement(_sb, name);

        _state = State.Tags;
        return this;
    }

    /// <summary>Adds a tag. Null or empty values are skipped: InfluxDB treats a missing tag and an empty one alike.</summary>
    public LineProtocolBuilder Tag(string key, string? value)
    {
        ArgumentNullException.ThrowIfNull(key);
        if (_state != State.Tags) throw new InvalidOperationException("Tags go after Measurement and before the first field.");
        LineProtocol.ValidateKey(key);
        if (string.IsNullOrEmpty(value) || LineProtocol.Normalize(value).Length == 0) return this;
        _tags.Add(new(key, value));
        return this;
    }

    /// <summary>Adds a float field.</summary>
    public LineProtocolBuilder Field(string key, double value)
    {
        if (!double.IsFinite(value)) throw new ArgumentOutOfRangeException(nameof(value), value, $"Field '{key}': InfluxDB cannot store NaN or infinite floats.");
        BeginField(key);
        LineProtocol.AppendDouble(_sb, value);
        return this;
    }

    /// <summary>Adds an integer field (written with the 'i' suffix, stored as int64).</summary>
    public LineProtocolBuilder Field(string key, long value)
    {
        BeginField(key);
        LineProtocol.AppendInteger(_sb, value);
        return this;
    }

    /// <summary>Adds a string field.</summary>
    public LineProtocolBuilder Field(string key, string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        BeginField(key);
        LineProtocol.AppendStringFieldValue(_sb, value);
        return this;
    }

    /// <summary>Adds a boolean field.</summary>
    public LineProtocolBuilder Field(string key, bool value)
    {
        BeginField(key);
        _sb.Append(value ? 't' : 'f');
        return this;
    }

    /// <summary>Ends the point with a timestamp in nanoseconds since the Unix epoch (write with precision=ns).</summary>
    public LineProtocolBuilder Timestamp(long unixNanoseconds)
    {
        RequireFields();
        _sb.Append(' ').Append(unixNanoseconds);
        EndLine();
        return this;
    }

    /// <summary>Ends the point with a timestamp (100 ns resolution of <see cref="DateTimeOffset"/>).</summary>
    public LineProtocolBuilder Timestamp(DateTimeOffset time) => Timestamp(ToUnixNanoseconds(time));

    /// <summary>Ends the point without a timestamp: the server uses its clock (not idempotent on replay).</summary>
    public LineProtocolBuilder End()
    {
        RequireFields();
        EndLine();
        return this;
    }

    /// <summary>The lines written so far; throws while a point is open.</summary>
    public override string ToString()
    {
        if (_state != State.Idle) throw new InvalidOperationException("A point is still open: end it with Timestamp or End.");
        return _sb.ToString();
    }

    /// <summary>The lines written so far as UTF-8 in a pooled buffer (no string); throws while a point is open.</summary>
    public PooledUtf8 ToUtf8()
    {
        if (_state != State.Idle) throw new InvalidOperationException("A point is still open: end it with Timestamp or End.");
        return PooledUtf8.Encode(_sb);
    }

    /// <summary>Nanoseconds since the Unix epoch.</summary>
    public static long ToUnixNanoseconds(DateTimeOffset time) => (time.UtcTicks - DateTime.UnixEpoch.Ticks) * 100;

    private void BeginField(string key)
    {
        // Validate first so that a bad key leaves the buffer and the state as they were.
        LineProtocol.ValidateKey(key);
        if (_state == State.Tags)
        {
            if (_tags.Count > 1)
            {
                // Callers usually add tags in key order already: then no sort (and no delegate call per comparison).
                var sorted = true;
                for (var i = 1; i < _tags.Count && sorted; i++) sorted = string.CompareOrdinal(_tags[i - 1].Key, _tags[i].Key) < 0;
                if (!sorted) _tags.Sort(static (a, b) => string.CompareOrdinal(a.Key, b.Key));
                for (var i = 1; i < _tags.Count; i++)
                {
                    if (_tags[i].Key == _tags[i - 1].Key) throw new ArgumentException($"Tag '{_tags[i].Key}' was given twice.", nameof(key));
                }
            }

            foreach (var (k, v) in _tags)
            {
                _sb.Append(',');
                LineProtocol.AppendKey(_sb, k);
                _sb.Append('=');
                LineProtocol.AppendTagValue(_sb, v);
            }

            _tags.Clear();
            _sb.Append(' ');
            _state = State.Fields;
        }
        else if (_state == State.Fields)
        {
            _sb.Append(',');
        }
        else
        {
            throw new InvalidOperationException("Fields go after Measurement.");
        }

        LineProtocol.AppendKey(_sb, key);
        _sb.Append('=');
    }

    private void RequireFields()
    {
        if (_state != State.Fields) throw new InvalidOperationException("A point needs a measurement and at least one field.");
    }

    private void EndLine()
    {
        _sb.Append('\n');
        _state = State.Idle;
        PointCount++;
    }
}
