namespace Apm.Hprof.Tests;

public sealed class TriageCommandTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("apm-triage-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var o = new StringWriter();
        var e = new StringWriter();
        var code = await TriageCommand.RunAsync(args, o, e, false, CancellationToken.None);
        return (code, o.ToString(), e.ToString());
    }

    [Fact]
    public async Task Bad_files_get_distinct_exit_codes_and_a_message_with_the_offset()
    {
        var good = SyntheticDumpTests.BuildSample(8, true).Bytes;
        var notHprof = Path.Combine(_dir, "a.txt");
        await File.WriteAllTextAsync(notHprof, "hello");
        var truncated = Path.Combine(_dir, "t.hprof");
        await File.WriteAllBytesAsync(truncated, good[..^7]);
        var corrupt = Path.Combine(_dir, "c.hprof");
        var bad = (byte[])good.Clone();
        bad[31] = 0x77;
        await File.WriteAllBytesAsync(corrupt, bad);

        var r = await Run(notHprof);
        Assert.Equal(TriageCommand.NotHprof, r.Code);
        Assert.Contains("not an HPROF file", r.Err, StringComparison.Ordinal);
        r = await Run(truncated);
        Assert.Equal(TriageCommand.Truncated, r.Code);
        Assert.Contains("offset", r.Err, StringComparison.Ordinal);
        r = await Run(corrupt);
        Assert.Equal(TriageCommand.Corrupt, r.Code);
        Assert.Contains("offset 31 (tag 0x77)", r.Err, StringComparison.Ordinal);
        Assert.Equal(TriageCommand.Unreadable, (await Run(Path.Combine(_dir, "missing.hprof"))).Code);
        Assert.Equal(TriageCommand.Usage, (await Run()).Code);
    }

    [Fact]
    public async Task Reports_are_written_and_JVM_strings_are_html_encoded()
    {
        var dump = Path.Combine(_dir, "x.hprof");
        await File.WriteAllBytesAsync(dump, SyntheticDumpTests.BuildSample(8, true, "app.<script>alert(1)<.script>").Bytes);
        var html = Path.Combine(_dir, "r.html");
        var json = Path.Combine(_dir, "r.json");
        var r = await Run(dump, "--html", html, "--json", json);
        Assert.Equal(0, r.Code);
        Assert.Contains("triage: dominators", r.Out, StringComparison.Ordinal);
        var page = await File.ReadAllTextAsync(html);
        Assert.DoesNotContain("<script>", page, StringComparison.Ordinal);
        Assert.Contains("app.&lt;script&gt;alert(1)&lt;.script&gt;", page, StringComparison.Ordinal);
        using var doc = System.Text.Json.JsonDocument.Parse(await File.ReadAllTextAsync(json));
        Assert.Equal(System.Text.Json.JsonValueKind.Array, doc.RootElement.GetProperty("findings").ValueKind);
        Assert.Contains(doc.RootElement.GetProperty("classes").EnumerateArray(), c => c.GetProperty("name").GetString() == "app.<script>alert(1)<.script>");
    }
}
