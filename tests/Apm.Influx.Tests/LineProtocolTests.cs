using System.Text;
using Apm.Influx;

namespace Apm.Influx.Tests;

/// <summary>Escaping and shape of line protocol, without a server.</summary>
public class LineProtocolTests
{
    [Theory]
    [InlineData("cpu", "cpu")]
    [InlineData("a b", @"a\ b")]
    [InlineData("a,b", @"a\,b")]
    [InlineData("a=b", "a=b")] // '=' needs no escape in a measurement
    [InlineData("q\"x", "q\"x")]
    [InlineData(@"back\slash", @"back\slash")]
    [InlineData("trailing\\\\", "trailing")]
    [InlineData("new\nline", @"new\ line")]
    [InlineData("é😀", "é😀")]
    public void Measurement_escapes_commas_and_spaces_only(string input, string expected)
    {
        var sb = new StringBuilder();
        LineProtocol.AppendMeasurement(sb, input);
        Assert.Equal(expected, sb.ToString());
    }

    [Theory]
    [InlineData("a b", @"a\ b")]
    [InlineData("a,b", @"a\,b")]
    [InlineData("a=b", @"a\=b")]
    [InlineData("\"'", "\"'")]
    [InlineData("cr\r\nlf", @"cr\ \ lf")]
    [InlineData(@"a\,b", @"a\,b")] // a backslash before a separator is dropped (ambiguous in 1.x), the comma is escaped
    [InlineData(@"a\b", @"a\b")] // other backslashes are literal
    [InlineData("x\\", "x")]
    public void Tag_values_and_keys_escape_commas_equals_and_spaces(string input, string expected)
    {
        var sb = new StringBuilder();
        LineProtocol.AppendTagValue(sb, input);
        Assert.Equal(expected, sb.ToString());
        sb.Clear();
        LineProtocol.AppendKey(sb, input);
        Assert.Equal(expected, sb.ToString());
    }

    [Theory]
    [InlineData("plain", "\"plain\"")]
    [InlineData("say \"hi\"", "\"say \\\"hi\\\"\"")]
    [InlineData(@"c:\dir\", "\"c:\\\\dir\\\\\"")]
    [InlineData("a,b c=d", "\"a,b c=d\"")]
    [InlineData("two\nlines", "\"two lines\"")]
    public void String_field_values_escape_quotes_and_backslashes(string input, string expected)
    {
        var sb = new StringBuilder();
        LineProtocol.AppendStringFieldValue(sb, input);
        Assert.Equal(expected, sb.ToString());
    }

    [Fact]
    public void A_point_has_sorted_tags_typed_fields_and_a_nanosecond_timestamp()
    {
        var lp = new LineProtocolBuilder();
        lp.Measurement("jvm memory")
            .Tag("pool", "G1 Old Gen").Tag("jvm", "42").Tag("empty", "").Tag("none", null)
            .Field("used", 1.5).Field("count", 7L).Field("name", "x\"y").Field("ok", true).Field("bad", false)
            .Timestamp(1_700_000_000_123_456_789);
        lp.Measurement("m").Field("v", 1e300).Field("neg", -0.25).Field("big", long.MinValue).End();

        Assert.Equal(
            "jvm\\ memory,jvm=42,pool=G1\\ Old\\ Gen used=1.5,count=7i,name=\"x\\\"y\",ok=t,bad=f 1700000000123456789\n" +
            "m v=1E+300,neg=-0.25,big=-9223372036854775808i\n",
            lp.ToString());
        Assert.Equal(2, lp.PointCount);
    }

    [Fact]
    public void Doubles_round_trip_exactly_through_their_text()
    {
        var values = new[] { 0.1, 1.0 / 3, double.Epsilon, double.MaxValue, -123456.789e-200, 5e-324 };
        foreach (var v in values)
        {
            var sb = new StringBuilder();
            LineProtocol.AppendDouble(sb, v);
            Assert.Equal(v, double.Parse(sb.ToString(), System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    [Fact]
    public void Invalid_points_are_refused_with_a_reason_and_leave_the_buffer_intact()
    {
        var lp = new LineProtocolBuilder();
        lp.Measurement("ok").Field("v", 1L).Timestamp(1);
        var before = lp.ToString();

        Assert.Contains("comment", Assert.Throws<ArgumentException>(() => lp.Measurement("#m")).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => lp.Measurement(""));
        Assert.Throws<ArgumentException>(() => lp.Measurement("\\\\"));
        lp.Measurement("m");
        Assert.Contains("time", Assert.Throws<ArgumentException>(() => lp.Tag("time", "x")).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => lp.Field("time", 1L));
        Assert.Throws<ArgumentOutOfRangeException>(() => lp.Field("v", double.NaN));
        Assert.Throws<ArgumentOutOfRangeException>(() => lp.Field("v", double.PositiveInfinity));
        Assert.Throws<InvalidOperationException>(() => lp.Timestamp(1)); // no field yet
        lp.Tag("k", "1").Tag("k", "2");
        Assert.Contains("twice", Assert.Throws<ArgumentException>(() => lp.Field("v", 1L)).Message, StringComparison.Ordinal);

        // Starting the next point discards the broken one.
        lp.Measurement("next").Field("v", 2L).Timestamp(2);
        Assert.Equal(before + "next v=2i 2\n", lp.ToString());
        Assert.Equal(2, lp.PointCount);
    }

    [Fact]
    public void Normalize_describes_what_the_server_stores()
    {
        Assert.Equal("a b c", LineProtocol.Normalize("a\nb\rc"));
        Assert.Equal(@"x\y", LineProtocol.Normalize(@"x\y\\"));
        Assert.Equal("a,b a=b", LineProtocol.Normalize(@"a\\,b a\=b"));
        Assert.Equal(@"\\x", LineProtocol.Normalize(@"\\x"));
        Assert.Equal("a b", LineProtocol.Normalize("a\\\nb"));
        Assert.Equal("", LineProtocol.Normalize("\\"));
        Assert.Equal("same", LineProtocol.Normalize("same"));
        Assert.Equal("q\" \\", LineProtocol.NormalizeStringField("q\"\n\\"));
    }

    [Fact]
    public void Timestamps_from_DateTimeOffset_are_nanoseconds_since_the_epoch()
    {
        Assert.Equal(0, LineProtocolBuilder.ToUnixNanoseconds(DateTimeOffset.UnixEpoch));
        Assert.Equal(1_000_000_100, LineProtocolBuilder.ToUnixNanoseconds(DateTimeOffset.UnixEpoch.AddTicks(10_000_001)));
    }

    [Fact]
    public void Batches_split_at_line_boundaries_and_skip_blank_and_comment_lines()
    {
        var data = "a v=1 1\n\n# comment\nb v=2 2\r\nc v=3 3"u8;
        Assert.Equal((data.Length, 3), InfluxWriter.TakeLines(data, 10));
        var (len, points) = InfluxWriter.TakeLines(data, 2);
        Assert.Equal(2, points);
        Assert.Equal("a v=1 1\n\n# comment\nb v=2 2\r\n", Encoding.UTF8.GetString(data[..len]));
        Assert.Equal((0, 0), InfluxWriter.TakeLines(ReadOnlySpan<byte>.Empty, 5));
    }
}

public class InfluxQlTests
{
    [Theory]
    [InlineData("cpu", "\"cpu\"")]
    [InlineData("a\"b", "\"a\\\"b\"")]
    [InlineData(@"a\b", "\"a\\\\b\"")]
    [InlineData("it's", "\"it\\'s\"")]
    [InlineData("x\ny", "\"x\\ny\"")]
    public void Identifiers_are_double_quoted_with_escapes(string input, string expected)
        => Assert.Equal(expected, InfluxQl.QuoteIdentifier(input));

    [Theory]
    [InlineData("v", "'v'")]
    [InlineData("it's", "'it\\'s'")]
    [InlineData("'; DROP DATABASE apm; --", "'\\'; DROP DATABASE apm; --'")]
    [InlineData(@"\", @"'\\'")]
    public void Strings_are_single_quoted_with_escapes(string input, string expected)
        => Assert.Equal(expected, InfluxQl.QuoteString(input));

    [Fact]
    public void Durations_and_times_are_exact_literals()
    {
        Assert.Equal("1500ms", InfluxQl.Duration(TimeSpan.FromSeconds(1.5)));
        Assert.Equal("1000000000", InfluxQl.Time(DateTimeOffset.UnixEpoch.AddSeconds(1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => InfluxQl.Duration(TimeSpan.Zero));
    }
}

public class InfluxOptionsTests
{
    [Fact]
    public void Credentials_never_appear_in_the_text_form()
    {
        var o = new InfluxOptions { Url = new Uri("http://user:s3cret@127.0.0.1:8086"), Username = "u", Password = "hunter2", Token = "tok-123" };
        var text = o.ToString();
        Assert.DoesNotContain("s3cret", text, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", text, StringComparison.Ordinal);
        Assert.DoesNotContain("tok-123", text, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:8086", text, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_settings_fail_with_the_setting_named()
    {
        Assert.Contains("Url", Assert.Throws<InvalidOperationException>(() => new InfluxOptions().Validate()).Message, StringComparison.Ordinal);
        var o = new InfluxOptions { Url = new Uri("ftp://x"), };
        Assert.Contains("http", Assert.Throws<InvalidOperationException>(o.Validate).Message, StringComparison.Ordinal);
        o = new InfluxOptions { Url = new Uri("http://x"), BatchSize = 0 };
        Assert.Contains("BatchSize", Assert.Throws<InvalidOperationException>(o.Validate).Message, StringComparison.Ordinal);
    }
}
