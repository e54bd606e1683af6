using System.Globalization;
using System.Text;

namespace Apm.Influx;

/// <summary>
/// Safe InfluxQL text for values that come from users and JVMs. InfluxQL strings and quoted identifiers know
/// the escapes \\, \", \' and \n; a raw newline inside them is a syntax error, so it is escaped too.
/// </summary>
public static class InfluxQl
{
    /// <summary>A double-quoted identifier (measurement, tag key, field, database): "a \"b\"".</summary>
    public static string QuoteIdentifier(string identifier)
    {
        ArgumentNullException.ThrowIfNull(identifier);
        return Quote(identifier, '"');
    }

    /// <summary>A single-quoted string literal for comparisons with tag values and string fields: 'it\'s'.</summary>
    public static string QuoteString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return Quote(value, '\'');
    }

    /// <summary>A time literal in nanoseconds since the epoch (exact, no time zone questions): 1700000000000000000.</summary>
    public static string Time(DateTimeOffset time) =>
        LineProtocolBuilder.ToUnixNanoseconds(time).ToString(CultureInfo.InvariantCulture);

    /// <summary>A duration literal in whole milliseconds, e.g. 1500ms, for GROUP BY time(...) and now() - ....</summary>
    public static string Duration(TimeSpan duration)
    {
        if (duration <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(duration), duration, "An InfluxQL duration must be positive.");
        return ((long)Math.Ceiling(duration.TotalMilliseconds)).ToString(CultureInfo.InvariantCulture) + "ms";
    }

    private static string Quote(string s, char quote)
    {
        var sb = new StringBuilder(s.Length + 2).Append(quote);
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': sb.Append(@"\\"); break;
                case '"': sb.Append("\\\""); break;
                case '\'': sb.Append("\\'"); break;
                case '\n': sb.Append("\\n"); break;
                default: sb.Append(c); break;
            }
        }

        return sb.Append(quote).ToString();
    }
}
