namespace Apm.Reports.Tests;

public sealed class ReportStoreTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("apm-store-");

    public void Dispose() => _dir.Delete(true);

    private static ReportMeta Meta(string id, DateTimeOffset created) =>
        new(id, "h:1:1", "h", "M", created, "cli", "", "", "finding", 10);

    [Fact]
    public void Reports_are_listed_newest_first_and_retention_keeps_the_newest_within_the_age()
    {
        var store = new ReportStore(_dir.FullName, new ReportStoreOptions { MaxReports = 3, MaxAge = TimeSpan.FromDays(2) });
        var now = DateTimeOffset.UtcNow;
        var ids = Enumerable.Range(0, 5).Select(_ => ReportStore.NewId()).ToList();
        for (var i = 0; i < 5; i++) store.Save(Meta(ids[i], now.AddHours(-i)), "{}"u8, "<html></html>"u8);
        store.Save(Meta(ReportStore.NewId(), now.AddDays(-3)), "{}"u8, "<html></html>"u8); // too old: deleted at once

        Assert.Equal(ids.Take(3), store.List().Select(m => m.Id));
        Assert.Equal(3, Directory.EnumerateDirectories(_dir.FullName).Count());
        Assert.NotNull(store.JsonPath(ids[0]));
        Assert.Null(store.JsonPath(ids[4]));
    }

    [Fact]
    public void Ids_that_are_not_report_ids_never_reach_a_path_and_broken_entries_are_skipped()
    {
        var store = new ReportStore(_dir.FullName);
        foreach (var bad in new[] { "..", "../x", "/etc/passwd", "0123456789ABCDEF0123456789ABCDEF", "0123", "", "0123456789abcdef0123456789abcde/" })
        {
            Assert.Null(store.TryGet(bad));
            Assert.Null(store.HtmlPath(bad));
            Assert.Throws<ArgumentException>(() => store.Save(Meta(bad, DateTimeOffset.UtcNow), "{}"u8, ""u8));
        }

        var good = ReportStore.NewId();
        store.Save(Meta(good, DateTimeOffset.UtcNow), "{}"u8, "<html></html>"u8);
        var broken = ReportStore.NewId();
        Directory.CreateDirectory(Path.Combine(_dir.FullName, broken));
        File.WriteAllText(Path.Combine(_dir.FullName, broken, "meta.json"), "{ not json");
        Assert.Equal([good], store.List().Select(m => m.Id));
    }
}
