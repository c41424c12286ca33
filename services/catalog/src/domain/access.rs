//! Who may do what.
//!
//! The rule: a caller who may not *see* a resource gets NOT_FOUND, so drafts never leak;
//! a caller who may see it but not *change* it gets PERMISSION_DENIED. Venues and non-draft
//! events are public; drafts are visible to their organizer and admins. Writes need the
//! organizer or admin role; organizers change only what they own, admins everything.

use ticketing_platform::audit::Actor;
use ticketing_platform::auth::Role;
use uuid::Uuid;

use super::CatalogError;
use super::event::EventStatus;

/// Which drafts a listing may show the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Drafts {
    /// Every draft (admins).
    All,
    /// The drafts of this organizer.
    Of(Uuid),
    /// None.
    None,
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    user_id: Option<Uuid>,
    admin: bool,
    organizer: bool,
    /// Who they are and where they came from, for the audit records of their changes.
    actor: Option<Actor>,
}

impl Caller {
    /// A call without an access token.
    pub fn anonymous() -> Self {
        Self { user_id: None, admin: false, organizer: false, actor: None }
    }

    /// An authenticated user with `roles`.
    pub fn user(user_id: Uuid, roles: &[Role]) -> Self {
        Self {
            user_id: Some(user_id),
            admin: roles.contains(&Role::Admin),
            organizer: roles.contains(&Role::Organizer),
            actor: None,
        }
    }

    /// The authenticated `actor`.
    pub fn acting(actor: Actor) -> Self {
        Self { actor: Some(actor.clone()), ..Self::user(actor.user_id, &actor.roles) }
    }

    /// Who acts, for an audit record: the caller as authenticated (with where they came
    /// from, when known).
    pub fn actor(&self) -> Result<Actor, CatalogError> {
        let id = self.manager()?;
        Ok(self.actor.clone().unwrap_or_else(|| Actor::recorded(id)))
    }

    /// The user's id, if authenticated.
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// Whether the caller manages what `owner` owns.
    fn manages(&self, owner: Uuid) -> bool {
        self.admin || (self.organizer && self.user_id == Some(owner))
    }

    /// The drafts the caller may see.
    pub fn visible_drafts(&self) -> Drafts {
        match self.user_id {
            _ if self.admin => Drafts::All,
            Some(id) if self.organizer => Drafts::Of(id),
            _ => Drafts::None,
        }
    }

    /// Whether the caller may see an event of `owner` in `status`.
    pub fn may_see_event(&self, owner: Uuid, status: EventStatus) -> bool {
        status != EventStatus::Draft || self.manages(owner)
    }

    /// The caller's id if they may manage venues and events at all.
    pub fn manager(&self) -> Result<Uuid, CatalogError> {
        let id = self.user_id.ok_or(CatalogError::Unauthenticated)?;
        if self.admin || self.organizer {
            Ok(id)
        } else {
            Err(CatalogError::Forbidden("managing venues and events requires the organizer or admin role".into()))
        }
    }

    /// Who owns what the caller creates: themselves, or whoever an admin names.
    pub fn owner_for(&self, requested: Option<Uuid>) -> Result<Uuid, CatalogError> {
        let me = self.manager()?;
        match requested {
            Some(other) if other != me && !self.admin => {
                Err(CatalogError::Forbidden("only an admin may act for another organizer".into()))
            }
            Some(other) => Ok(other),
            None => Ok(me),
        }
    }

    /// May the caller change (or build events at) the venue of `owner`?
    pub fn check_venue(&self, venue_id: Uuid, owner: Uuid) -> Result<(), CatalogError> {
        self.manager()?;
        if self.manages(owner) {
            Ok(())
        } else {
            Err(CatalogError::Forbidden(format!("venue {venue_id} belongs to another organizer")))
        }
    }

    /// May the caller change the event `event_id` of `owner` in `status`?
    pub fn check_event(&self, event_id: Uuid, owner: Uuid, status: EventStatus) -> Result<(), CatalogError> {
        self.manager()?;
        if !self.may_see_event(owner, status) {
            return Err(CatalogError::not_found("event", event_id));
        }
        if self.manages(owner) {
            Ok(())
        } else {
            Err(CatalogError::Forbidden(format!("event {event_id} belongs to another organizer")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix() {
        let (a, b, id) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let organizer_a = Caller::user(a, &[Role::Organizer]);
        let organizer_b = Caller::user(b, &[Role::Organizer]);
        let admin = Caller::user(Uuid::new_v4(), &[Role::Admin]);
        let user = Caller::user(Uuid::new_v4(), &[Role::User]);
        let anonymous = Caller::anonymous();

        assert!(organizer_a.check_event(id, a, EventStatus::Draft).is_ok());
        assert!(admin.check_event(id, a, EventStatus::Draft).is_ok());
        assert!(matches!(organizer_b.check_event(id, a, EventStatus::Draft), Err(CatalogError::NotFound { .. })));
        assert!(matches!(organizer_b.check_event(id, a, EventStatus::OnSale), Err(CatalogError::Forbidden(_))));
        assert!(matches!(user.check_event(id, a, EventStatus::Published), Err(CatalogError::Forbidden(_))));
        assert!(matches!(anonymous.check_event(id, a, EventStatus::Published), Err(CatalogError::Unauthenticated)));

        assert!(organizer_a.check_venue(id, a).is_ok());
        assert!(admin.check_venue(id, a).is_ok());
        assert!(matches!(organizer_b.check_venue(id, a), Err(CatalogError::Forbidden(_))));

        assert!(user.may_see_event(a, EventStatus::Published));
        assert!(!user.may_see_event(a, EventStatus::Draft));
        assert!(!anonymous.may_see_event(a, EventStatus::Draft));
        assert!(organizer_a.may_see_event(a, EventStatus::Draft));

        assert_eq!(admin.visible_drafts(), Drafts::All);
        assert_eq!(organizer_a.visible_drafts(), Drafts::Of(a));
        assert_eq!(user.visible_drafts(), Drafts::None);
        assert_eq!(anonymous.visible_drafts(), Drafts::None);
    }

    #[test]
    fn only_admins_act_for_others() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let organizer = Caller::user(a, &[Role::Organizer]);
        assert_eq!(organizer.owner_for(None).unwrap(), a);
        assert_eq!(organizer.owner_for(Some(a)).unwrap(), a);
        assert!(matches!(organizer.owner_for(Some(b)), Err(CatalogError::Forbidden(_))));
        assert_eq!(Caller::user(a, &[Role::Admin]).owner_for(Some(b)).unwrap(), b);
        assert!(matches!(Caller::anonymous().owner_for(None), Err(CatalogError::Unauthenticated)));
    }
}
