using Apm.Alerts.Mail;

namespace Apm.Alerts.Tests;

public sealed class MailCompositionTests
{
    [Fact]
    public void Suggested_fixes_appear_numbered_in_the_text_part_and_encoded_in_the_html_part()
    {
        var n = MailTestData.Notification() with { SuggestedFixes = ["Upgrade the JDBC driver.", "Call java.util.Timer.purge() <now> & then."] };

        var content = AlertMail.Render(n, MailTestData.Dashboard);

        Assert.Contains("Suggested fixes:\n  1. Upgrade the JDBC driver.\n  2. Call java.util.Timer.purge() <now> & then.\n", content.Text, StringComparison.Ordinal);
        Assert.Contains("<h3>Suggested fixes</h3>\n<ol>\n<li>Upgrade the JDBC driver.</li>\n<li>Call java.util.Timer.purge() &lt;now&gt; &amp; then.</li>", content.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Without_suggested_fixes_there_is_no_fixes_section()
    {
        var content = AlertMail.Render(MailTestData.Notification(), MailTestData.Dashboard);

        Assert.DoesNotContain("Suggested fixes", content.Text, StringComparison.Ordinal);
        Assert.DoesNotContain("Suggested fixes", content.Html, StringComparison.Ordinal);
    }

    [Fact]
    public void Firing_subject_names_state_rule_and_jvm()
    {
        var content = AlertMail.Render(MailTestData.Notification(), MailTestData.Dashboard);
        Assert.Equal("[Apm] FIRING FinalizerBacklog on com.acme.OrderService@web-1", content.Subject);
    }

    [Fact]
    public void Subject_with_CR_LF_from_the_jvm_stays_one_line()
    {
        var content = AlertMail.Render(MailTestData.Notification(displayName: "evil\r\nBcc: victim@x.test\nX-Injected: yes", rule: "Gc\rOverhead"), null);
        Assert.DoesNotContain('\r', content.Subject);
        Assert.DoesNotContain('\n', content.Subject);
        Assert.Equal("[Apm] FIRING Gc Overhead on evil  Bcc: victim@x.test X-Injected: yes", content.Subject);
    }

    [Fact]
    public void Subject_is_cut_to_the_maximum_length()
    {
        var content = AlertMail.Render(MailTestData.Notification(displayName: new string('x', 10_000)), null);
        Assert.Equal(AlertMail.MaxSubjectLength, content.Subject.Length);
    }

    [Fact]
    public void Html_part_encodes_everything_from_the_jvm_and_text_part_keeps_it_verbatim()
    {
        var content = AlertMail.Render(MailTestData.Notification(displayName: "<b>Main</b> & co"), MailTestData.Dashboard);
        Assert.DoesNotContain(MailTestData.HostileClass, content.Html, StringComparison.Ordinal);
        Assert.Contains("&lt;script&gt;alert(1)&lt;/script&gt;", content.Html, StringComparison.Ordinal);
        Assert.Contains("&lt;b&gt;Main&lt;/b&gt; &amp; co", content.Html, StringComparison.Ordinal);
        Assert.Contains(MailTestData.HostileClass, content.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Dashboard_link_url_encodes_the_jvm_id()
    {
        Assert.Equal("http://dashboard.test:3000/apm/jvm?id=web-1%2F4242", AlertMail.DashboardLink(MailTestData.Dashboard, "web-1/4242")!.AbsoluteUri);
        Assert.Null(AlertMail.DashboardLink(null, "web-1/4242"));
        var content = AlertMail.Render(MailTestData.Notification(), MailTestData.Dashboard);
        Assert.Contains("href=\"http://dashboard.test:3000/apm/jvm?id=web-1%2F4242\"", content.Html, StringComparison.Ordinal);
        Assert.Contains("Dashboard: http://dashboard.test:3000/apm/jvm?id=web-1%2F4242", content.Text, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_state_is_rejected_with_the_state_in_the_message()
    {
        var ex = Assert.Throws<ArgumentException>(() => AlertMail.Render(MailTestData.Notification(state: "pending"), null));
        Assert.Contains("'pending'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Compose_builds_a_message_with_text_and_html_views_for_all_recipients()
    {
        using var message = AlertMail.Compose(MailTestData.Notification(), MailTestData.Options(25));
        Assert.Equal(["oncall@ops.test", "dba@ops.test"], message.To.Select(a => a.Address));
        Assert.Equal(["text/plain", "text/html"], message.AlternateViews.Select(v => v.ContentType.MediaType));
    }

    [Fact]
    public void Options_validation_names_the_missing_setting()
    {
        var ex = Assert.Throws<InvalidOperationException>(() => new SmtpOptions { From = "a@b.test", To = ["c@d.test"] }.Validate());
        Assert.Contains("Host", ex.Message, StringComparison.Ordinal);
        ex = Assert.Throws<InvalidOperationException>(() => new SmtpOptions { Host = "h", From = "a@b.test", To = ["not an address"] }.Validate());
        Assert.Contains("not an address", ex.Message, StringComparison.Ordinal);
        Assert.Equal(["a@b.test", "c@d.test"], SmtpOptions.ParseRecipients(" a@b.test ,, c@d.test;"));
    }
}
