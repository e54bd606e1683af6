using Apm.Jvm.PerfData;

namespace Apm.Jvm.PerfData.Tests;

public class PerfDataFileTests
{
    [Fact]
    public void A_mapped_file_sees_values_the_writer_changes_between_reads()
    {
        using var dir = new TempDir();
        var w = new PerfDataWriter().Long("sun.rt.safepoints", 1).String("sun.rt.javaCommand", "Main");
        var path = dir.File("1234", w.Build());
        using var file = PerfDataFile.Open(path);

        var first = file.Read();
        // Rewrite in place like a JVM does (same inode, the mapping is shared).
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            fs.Write(new PerfDataWriter().Long("sun.rt.safepoints", 2).String("sun.rt.javaCommand", "Main").Build());
        }

        var second = file.Read();
        Assert.Equal(1, first.GetLongOrDefault("sun.rt.safepoints"));
        Assert.Equal(2, second.GetLongOrDefault("sun.rt.safepoints"));
        Assert.Equal("Main", second.GetStringOrDefault("sun.rt.javaCommand"));
    }

    [Fact]
    public void Counters_the_jvm_adds_later_appear_in_the_next_read()
    {
        using var dir = new TempDir();
        var path = dir.File("1", new PerfDataWriter { ModTimeStamp = 1 }.Long("a", 1).Build());
        using var file = PerfDataFile.Open(path);
        Assert.Single(file.Read());

        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            fs.Write(new PerfDataWriter { ModTimeStamp = 2 }.Long("a", 1).Long("b", 5).Build());
        }

        var s = file.Read();
        Assert.Equal(2, s.Count);
        Assert.Equal(5, s.GetLongOrDefault("b"));
    }

    [Fact]
    public async Task Read_waits_for_the_accessible_flag_of_a_starting_jvm()
    {
        using var dir = new TempDir();
        var path = dir.File("1", new PerfDataWriter { Accessible = 0 }.Long("a", 9).Build());
        using var file = PerfDataFile.Open(path);
        Assert.Throws<PerfDataNotAccessibleException>(() => file.Read(TimeSpan.Zero));

        var writer = Task.Run(() =>
        {
            Thread.Sleep(50);
            using var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite);
            fs.Position = 7;
            fs.WriteByte(1);
        });
        var s = file.Read(TimeSpan.FromSeconds(30));
        await writer;
        Assert.Equal(9, s.GetLongOrDefault("a"));
    }

    [Fact]
    public void An_empty_file_is_refused_with_a_reason_and_no_handle_is_left_open()
    {
        using var dir = new TempDir();
        var path = dir.File("1", []);
        var ex = Assert.Throws<PerfDataFormatException>(() => PerfDataFile.Open(path));
        Assert.Contains("truncated: 0 bytes", ex.Message, StringComparison.Ordinal);
        Assert.Equal(0, ProcessResources.OpenFilesUnder(dir.Path));
    }

    [Fact]
    public void A_file_that_shrank_under_the_mapping_is_refused_instead_of_touched()
    {
        using var dir = new TempDir();
        var path = dir.File("1", new PerfDataWriter().Long("a", 1).Build());
        using var file = PerfDataFile.Open(path);
        using (var fs = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.ReadWrite))
        {
            fs.SetLength(100);
        }

        var ex = Assert.Throws<PerfDataFormatException>(() => file.Read());
        Assert.Contains("shrank from 4096 to 100", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Dispose_releases_the_handle_and_the_mapping_and_a_deleted_file_stays_readable_while_open()
    {
        using var dir = new TempDir();
        var path = dir.File("1", new PerfDataWriter().Long("a", 3).Build());
        var file = PerfDataFile.Open(path);
        Assert.Equal(1, ProcessResources.OpenFilesUnder(dir.Path));
        Assert.True(ProcessResources.MappingsUnder(dir.Path) >= 1);

        // A JVM deletes its file on exit; the collector's open mapping must keep working until it notices.
        File.Delete(path);
        Assert.Equal(3, file.Read().GetLongOrDefault("a"));

        file.Dispose();
        file.Dispose();
        Assert.Equal(0, ProcessResources.OpenFilesUnder(dir.Path));
        Assert.Equal(0, ProcessResources.MappingsUnder(dir.Path));
        Assert.Throws<ObjectDisposedException>(() => file.Read());
    }
}
