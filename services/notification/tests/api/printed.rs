//! Printed tickets: a booking's PDF, a page per ticket that still admits with the ticket's
//! static code as a QR code, for its owner only, and attached to the tickets email.

use ticketing_platform::auth::Role;
use ticketing_proto::notification::v1 as pb;
use ticketing_testkit::pdf;
use uuid::Uuid;

use crate::helpers::*;

#[tokio::test]
async fn the_owner_prints_a_page_per_ticket_whose_code_admits_once() {
    let app = spawn_app().await;
    let show = app.publish_show("Eras & Friends — Zürich 東京").await;
    let (buyer, confirmed, tickets) = issued(&app, &show, 3).await;
    let booking = booking_id(&confirmed);

    let printed = app.tickets_pdf(buyer.id, &[Role::User], booking).await.expect("the owner's PDF");
    assert_eq!(printed.filename, format!("tickets-{booking}.pdf"));
    assert_eq!(printed.pages, 3);
    let codes: Vec<String> = tickets.iter().map(|t| t.code.clone()).collect();
    assert_eq!(pdf::qr_codes(&printed.pdf), codes, "a page per ticket, each with its static code, in order");
    let text = pdf::text(&printed.pdf);
    // Characters Helvetica's WinAnsiEncoding lacks are replaced, the rest printed as they are.
    for expected in [
        "Eras & Friends — Zürich ??",
        "Hallenstadion",
        "2027-01-15 09:00 (Europe/Berlin)",
        &booking.to_string(),
        &buyer.name,
        "Floor A, Row 12, Seat 1",
        "Floor A, Row 12, Seat 3",
        "TICKET 3 OF 3",
    ] {
        assert!(text.contains(expected), "{expected:?} is not printed:\n{text}");
    }

    // The printed code is the static one: it admits once where static codes do (ADR 0029),
    // and not at a gate that asks for the app's rotating code.
    let organizer = [Role::Organizer];
    let strict = app.try_verify_at(show.organizer, &organizer, &codes[0], show.id, true).await.unwrap();
    assert_eq!(result(&strict), pb::VerificationResult::RotatingCodeRequired);
    let first = app.verify(show.organizer, &organizer, &codes[0], show.id).await;
    assert_eq!(result(&first), pb::VerificationResult::Valid);
    let second = app.verify(show.organizer, &organizer, &codes[0], show.id).await;
    assert_eq!(result(&second), pb::VerificationResult::AlreadyScanned);
}

#[tokio::test]
async fn nobody_else_prints_a_booking_and_revoked_tickets_are_not_printed() {
    let app = spawn_app().await;
    let show = app.publish_show("Private Show").await;
    let (buyer, confirmed, _) = issued(&app, &show, 1).await;
    let booking = booking_id(&confirmed);

    // Another buyer, the organizer and even an admin are told there is nothing: a printed
    // code admits whoever holds the paper, and the answer does not say whose booking it is.
    for (who, roles) in [("another buyer", Role::User), ("the organizer", Role::Organizer), ("an admin", Role::Admin)] {
        let refused = app.tickets_pdf(Uuid::new_v4(), &[roles], booking).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::NotFound, "{who}: {refused:?}");
    }
    let unknown = app.tickets_pdf(buyer.id, &[Role::User], Uuid::new_v4()).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    let request = pb::GetTicketsPdfRequest { booking_id: "not-a-uuid".into() };
    let invalid = app.client.clone().get_tickets_pdf(app.authed(request, buyer.id, &[Role::User])).await.unwrap_err();
    assert_eq!(invalid.code(), tonic::Code::InvalidArgument);

    app.publish(BOOKING, &confirmed.booking_id, &refunded(&confirmed)).await;
    eventually("the refund to revoke the tickets", WAIT, || async {
        let refused = app.tickets_pdf(buyer.id, &[Role::User], booking).await.err()?;
        (refused.code() == tonic::Code::NotFound).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_tickets_email_carries_the_pdf() {
    let app = spawn_app().await;
    let show = app.publish_show("Eras & Friends").await;
    let (buyer, confirmed, tickets) = issued(&app, &show, 2).await;
    let booking = booking_id(&confirmed);

    let emails = wait_for_emails(&app.smtp, &buyer.email, 2).await;
    let email = emails.iter().find(|e| e.subject.contains("tickets")).expect("the tickets email");
    let [(filename, attached)] = &email.pdfs[..] else { panic!("one PDF attached: {:?}", email.pdfs.len()) };
    assert_eq!(filename, &format!("tickets-{booking}.pdf"));
    let codes: Vec<String> = tickets.iter().map(|t| t.code.clone()).collect();
    assert_eq!(pdf::qr_codes(attached), codes);
    let text = pdf::text(attached);
    for expected in ["Eras & Friends", "Hallenstadion", "2027-01-15 09:00 (Europe/Berlin)", &buyer.name] {
        assert!(text.contains(expected), "{expected:?} is not printed:\n{text}");
    }
    assert_eq!(email.pngs.len(), 2, "the inline QR codes stay");
}
